//! What each subcommand does, on top of the SDK.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cachet_client::{
    Client, ClientError, ClientOptions, Contact, Conversation, Event, MessageKind, NewProfile,
    Split, StoredMessage, TrustState, UnlockSecret,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use cachet_cli::cli::*;
use cachet_cli::error::CliError;
use cachet_cli::render;

type Result<T, E = CliError> = std::result::Result<T, E>;

/// The client configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    profile: Option<PathBuf>,
    remember_unlock: Option<bool>,
    require_verified: Option<bool>,
    ca_certificate: Option<PathBuf>,
    /// Operators whose trust-log blocks are accepted: `op:NAME` → Ed25519 key in hex.
    operators: Option<BTreeMap<String, String>>,
}

/// Settings after merging flags, environment, file and defaults.
struct Ctx {
    profile: PathBuf,
    server: Option<String>,
    json: bool,
    remember: bool,
    require_verified: bool,
    ca: Option<Vec<u8>>,
    operators: cachet_client::OperatorPins,
}

fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("cachet").join("config.toml"))
}

fn load_config(explicit: Option<&Path>) -> Result<FileConfig> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_config_path() {
            Some(p) => (p, false),
            None => return Ok(FileConfig::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::usage(
                format!("config file {}: {e}", path.display()),
                "keys are server, profile, remember_unlock, require_verified, ca_certificate, operators",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(CliError::usage(
            format!("cannot read config file {}: {e}", path.display()),
            "check --client-config / CACHET_CLIENT_CONFIG",
        )),
    }
}

impl Ctx {
    fn new(cli: &Cli) -> Result<Self> {
        let file = load_config(cli.client_config.as_deref())?;
        let profile = cli
            .profile
            .clone()
            .or(file.profile)
            .or_else(|| dirs::data_dir().map(|d| d.join("cachet").join("default")))
            .ok_or_else(|| {
                CliError::usage(
                    "no profile directory",
                    "pass --profile DIR or set CACHET_PROFILE",
                )
            })?;
        let ca = match file.ca_certificate {
            Some(p) => Some(std::fs::read(&p).map_err(|e| {
                CliError::Io(format!("cannot read CA certificate {}: {e}", p.display()))
            })?),
            None => None,
        };
        let mut operators = cachet_client::OperatorPins::new();
        for (id, key) in file.operators.unwrap_or_default() {
            let parsed = hex::decode(key.trim())
                .ok()
                .and_then(|b| cachet_crypto::SignPublicKey::from_slice(&b).ok())
                .ok_or_else(|| {
                    CliError::usage(
                        format!("config file: the key of operator {id:?} is not 32 bytes of hex"),
                        "write operators as \"op:NAME\" = \"<64 hex digits>\"",
                    )
                })?;
            let id = if id.starts_with("op:") {
                id
            } else {
                format!("op:{id}")
            };
            operators.insert(id, parsed);
        }
        Ok(Self {
            profile,
            server: cli.server.clone().or(file.server),
            json: cli.json,
            remember: file.remember_unlock.unwrap_or(true),
            require_verified: file.require_verified.unwrap_or(false),
            ca,
            operators,
        })
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            server_url: self.server.clone(),
            require_verified: self.require_verified,
            root_certificate_pem: self.ca.clone(),
            client_type: cachet_proto::v1::ClientType::Cli,
            operators: self.operators.clone(),
            ..ClientOptions::default()
        }
    }

    fn open(&self) -> Result<Client> {
        Ok(Client::open(&self.profile, self.options())?)
    }

    /// Opens and unlocks: remembered unlock, then CACHET_PIN / CACHET_PASSPHRASE, then a
    /// prompt on a terminal.
    fn unlocked(&self) -> Result<Client> {
        let client = self.open()?;
        if client.resume()? {
            return Ok(client);
        }
        let secret = env_secret().or_else(|| {
            std::io::stdin()
                .is_terminal()
                .then(|| prompt_secret("PIN or passphrase: "))
                .flatten()
        });
        let Some(secret) = secret else {
            return Err(ClientError::Locked.into());
        };
        client.unlock(&secret)?;
        self.keep(&client);
        Ok(client)
    }

    /// Extends the remembered unlock after a successful command.
    fn keep(&self, client: &Client) {
        if self.remember && client.is_unlocked() {
            let _ = client.remember_unlock();
        }
    }

    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    fn emit(&self, value: Value) {
        if self.json {
            println!("{value}");
        }
    }
}

fn env_secret() -> Option<UnlockSecret> {
    ["CACHET_PIN", "CACHET_PASSPHRASE"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map(UnlockSecret::new)
}

fn prompt_secret(prompt: &str) -> Option<UnlockSecret> {
    rpassword::prompt_password(prompt)
        .ok()
        .map(UnlockSecret::new)
}

fn prompt_line(prompt: &str) -> Option<String> {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    let line = line.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

fn join(words: &[String]) -> String {
    words.join(" ")
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Register(args) => register(&ctx, args).await,
        Command::Contacts(args) => contacts(&ctx, args).await,
        Command::Send(args) => send(&ctx, args).await,
        Command::Inbox(args) => inbox(&ctx, args).await,
        Command::Attach(args) => attach(&ctx, args).await,
        Command::Fetch(args) => fetch(&ctx, args).await,
        Command::Group(args) => group(&ctx, args).await,
        Command::Case(args) => case(&ctx, args).await,
        Command::Verify(args) => verify(&ctx, args).await,
        Command::Lock => {
            let client = ctx.open()?;
            client.lock()?;
            ctx.say("locked");
            ctx.emit(json!({"locked": true}));
            Ok(())
        }
        Command::Unlock => {
            let client = ctx.unlocked()?;
            client.remember_unlock()?;
            ctx.say("unlocked for 10 minutes after the last use (`cachet lock` to lock now)");
            ctx.emit(json!({"unlocked": true}));
            Ok(())
        }
        Command::Status => status(&ctx),
        Command::Server(args) => server(*args).await,
        Command::Recovery(args) => recovery(&ctx, args).await,
        Command::Keyserver(args) => keyserver(*args).await,
        Command::Operator(args) => operator(&ctx, args).await,
        Command::Audit(args) => audit(&ctx, args).await,
        Command::Demo(args) => {
            let options = cachet_cli::demo::DemoOptions {
                data_dir: args.data_dir,
                attachment_bytes: args.attachment_mib.max(1) * 1024 * 1024,
                show_progress: !ctx.json,
            };
            // With --json, stdout carries only the report; the narration goes to stderr.
            let report = if ctx.json {
                cachet_cli::demo::run(options, &mut std::io::stderr()).await?
            } else {
                cachet_cli::demo::run(options, &mut std::io::stdout()).await?
            };
            if ctx.json {
                ctx.emit(serde_json::to_value(&report).unwrap_or(Value::Null));
            }
            Ok(())
        }
        Command::Bench(args) => {
            let options = cachet_cli::bench::BenchOptions {
                users: args.users,
                duration: std::time::Duration::from_secs(args.seconds.max(1)),
                database_url: args.database_url,
                data_dir: args.data_dir,
                batch: args.batch,
            };
            let report = cachet_cli::bench::run(options, &mut std::io::stderr()).await?;
            if ctx.json {
                ctx.emit(serde_json::to_value(&report).unwrap_or(Value::Null));
            } else {
                print!("{}", cachet_cli::bench::render(&report));
            }
            Ok(())
        }
    }
}

async fn register(ctx: &Ctx, args: RegisterArgs) -> Result<()> {
    if Client::exists(&ctx.profile) {
        return Err(ClientError::ProfileExists(ctx.profile.clone()).into());
    }
    let server = ctx.server.clone().ok_or_else(|| {
        CliError::usage(
            "no server URL",
            "pass --server URL (e.g. http://127.0.0.1:7780) or set CACHET_SERVER",
        )
    })?;
    // Ask for the secret first, so a mistake costs no one-time code.
    let secret = match env_secret() {
        Some(s) => s,
        None if std::io::stdin().is_terminal() => {
            let a = prompt_secret("Choose a 5-digit PIN or a passphrase (10+ characters): ")
                .ok_or(ClientError::Locked)?;
            let b = prompt_secret("Repeat it: ").ok_or(ClientError::Locked)?;
            if a.expose_secret() != b.expose_secret() {
                return Err(CliError::usage(
                    "the two entries differ",
                    "run the command again",
                ));
            }
            a
        }
        None => {
            return Err(CliError::usage(
                "no PIN or passphrase",
                "set CACHET_PIN (5 digits) or CACHET_PASSPHRASE, or run in a terminal",
            ))
        }
    };
    secret.check_new()?;
    let mut options = ctx.options();
    if let Some(path) = &args.ca_cert {
        // Pinned in the profile: every later request of the profile trusts only it.
        let pem = std::fs::read(path).map_err(|e| {
            CliError::usage(
                format!("cannot read the certificate {}: {e}", path.display()),
                "--ca-cert names a PEM file: the server's certificate authority, or its self-signed certificate",
            )
        })?;
        options.root_certificate_pem = Some(pem);
    }
    let pending = Client::start_registration(&server, &args.identifier, options).await?;
    let code = match (&args.code, &args.dev_codes) {
        (Some(c), _) => c.clone(),
        (None, Some(file)) => {
            let mut found = None;
            for _ in 0..100 {
                found = cachet_cli::demo::dev_code(file, &args.identifier);
                if found.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            found.ok_or_else(|| {
                CliError::usage(
                    format!("no code for {} in {}", args.identifier, file.display()),
                    "--dev-codes names the dev-codes.txt of a server run with the dev notifier",
                )
            })?
        }
        (None, None) => prompt_line(&format!("One-time code sent to {}: ", args.identifier))
            .ok_or_else(|| {
                CliError::usage(
                    "no one-time code given",
                    "type the code, or pass --code CODE",
                )
            })?,
    };
    let client = pending
        .finish(NewProfile {
            dir: &ctx.profile,
            code: &code,
            display_name: &args.name,
            secret: &secret,
            previous: None,
        })
        .await?;
    ctx.keep(&client);
    ctx.say(format!(
        "registered {} as {} (key version {}); profile in {}",
        args.name,
        client.user_id(),
        client.key_version(),
        ctx.profile.display()
    ));
    ctx.emit(json!({
        "user_id": client.user_id(),
        "key_version": client.key_version(),
        "profile": ctx.profile,
    }));
    Ok(())
}

fn contact_line(c: &Contact) -> String {
    let op = if c.operator_verified {
        " [profile checked]"
    } else {
        ""
    };
    format!(
        "{:<16} {:<24} {}  keys v{}  {}{}",
        c.alias,
        c.display_name,
        c.user_id,
        c.key_version,
        c.trust.label(),
        op
    )
}

async fn contacts(ctx: &Ctx, args: ContactsArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    match args.action.unwrap_or(ContactsAction::List) {
        ContactsAction::List => {
            let list = client.contacts()?;
            if list.is_empty() {
                ctx.say(
                    "no contacts yet; add one with `cachet contacts add +33612345678 --as NAME`",
                );
            }
            for c in &list {
                ctx.say(contact_line(c));
            }
            ctx.emit(json!(list));
        }
        ContactsAction::Add {
            identifier,
            user_id,
            alias,
        } => {
            let c = match (identifier, user_id) {
                (Some(i), _) => {
                    client
                        .add_contact_by_identifier(&i, alias.as_deref())
                        .await?
                }
                (None, Some(u)) => client.add_contact(&u, alias.as_deref()).await?,
                (None, None) => {
                    return Err(CliError::usage(
                        "give a phone number, an e-mail address or --user-id",
                        "cachet contacts add +33612345678 --as camille",
                    ))
                }
            };
            ctx.say(format!("added {}", contact_line(&c)));
            ctx.emit(json!(c));
        }
        ContactsAction::Show { contact } => {
            let c = client.find_contact(&contact)?;
            ctx.say(contact_line(&c));
            ctx.say(format!("  box key   {}", hex::encode(c.box_key.as_bytes())));
            ctx.say(format!(
                "  sign key  {}",
                hex::encode(c.sign_key.as_bytes())
            ));
            if let TrustState::KeyChanged { note, .. } = &c.trust {
                ctx.say(format!("  KEY CHANGED: {note}"));
            }
            ctx.emit(json!(c));
        }
        ContactsAction::Refresh { contact } => {
            let c = client.find_contact(&contact)?;
            match client.refresh_contact(&c.user_id).await? {
                Some(report) => {
                    eprintln!("{}", render::key_change(&report));
                    ctx.emit(json!(report));
                }
                None => {
                    ctx.say(format!(
                        "{}: keys unchanged (version {})",
                        c.alias, c.key_version
                    ));
                    ctx.emit(json!({"changed": false}));
                }
            }
        }
    }
    ctx.keep(&client);
    Ok(())
}

async fn send(ctx: &Ctx, args: SendArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let text = join(&args.text);
    let message = if args.group {
        let g = client.find_group(&args.to)?;
        client.send_group_text(&g.group_id, &text).await?
    } else {
        let c = client.find_contact(&args.to)?;
        client.send_text(&c.user_id, &text).await?
    };
    ctx.say(format!("sent to {}: \"{text}\"", args.to));
    ctx.emit(json!(message));
    ctx.keep(&client);
    Ok(())
}

/// Names for user ids: contacts' aliases, "you" for the user.
fn names(client: &Client) -> Result<HashMap<String, String>> {
    let mut map: HashMap<String, String> = client
        .contacts()?
        .into_iter()
        .map(|c| (c.user_id, c.alias))
        .collect();
    map.insert(client.user_id().to_owned(), "you".into());
    Ok(map)
}

fn who(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_owned())
}

fn message_line(m: &StoredMessage, names: &HashMap<String, String>) -> String {
    let from = who(names, &m.sender_id);
    let body = match m.kind {
        MessageKind::Text => format!("\"{}\"", m.body),
        MessageKind::Attachment => format!(
            "[attachment {} — `cachet fetch {}`]",
            m.body,
            m.attachment_id.as_deref().unwrap_or("?")
        ),
        MessageKind::Undecryptable => format!("[could not decrypt: {}]", m.body),
        MessageKind::Notice => {
            return format!("{}  ** {} **", render::time(m.timestamp), m.body);
        }
    };
    let read = match (m.outgoing, m.read_at) {
        (true, Some(_)) => "  ✓ read",
        _ => "",
    };
    format!("{}  {from}: {body}{read}", render::time(m.timestamp))
}

fn conversation_title(
    client: &Client,
    c: &Conversation,
    names: &HashMap<String, String>,
) -> String {
    match c {
        Conversation::Direct(id) => who(names, id),
        Conversation::Group(g) => client
            .find_group(g)
            .map(|g| format!("group {}", g.name))
            .unwrap_or_else(|_| format!("group {g}")),
        Conversation::Case(id) => client
            .find_case(id)
            .map(|c| format!("case \"{}\"", c.title))
            .unwrap_or_else(|_| format!("case {id}")),
    }
}

fn print_events(ctx: &Ctx, client: &Client, events: &[Event]) -> Result<()> {
    let names = names(client)?;
    for e in events {
        match e {
            Event::Message(m) => {
                let title = conversation_title(client, &m.conversation, &names);
                ctx.say(format!("new in {title}: {}", message_line(m, &names)));
            }
            Event::Typing { from, typing, .. } => ctx.say(format!(
                "{} {}",
                who(&names, from),
                if *typing {
                    "is typing…"
                } else {
                    "stopped typing"
                }
            )),
            Event::ReadReceipt {
                from, message_ids, ..
            } => ctx.say(format!(
                "{} read {} of your message(s)",
                who(&names, from),
                message_ids.len()
            )),
            Event::KeyChanged(report) => eprintln!("{}", render::key_change(report)),
            Event::Group { name, members, .. } => ctx.say(format!(
                "you are in group {name} ({} members)",
                members.len()
            )),
            Event::Undecryptable {
                sender_id, reason, ..
            } => ctx.say(format!(
                "a message from {} could not be decrypted: {reason}",
                who(&names, sender_id)
            )),
        }
    }
    Ok(())
}

fn resolve_conversation(client: &Client, query: &str) -> Result<Conversation> {
    if let Ok(c) = client.find_contact(query) {
        return Ok(Conversation::Direct(c.user_id));
    }
    if let Ok(g) = client.find_group(query) {
        return Ok(Conversation::Group(g.group_id));
    }
    if let Ok(c) = client.find_case(query) {
        return Ok(Conversation::Case(c.case_id));
    }
    Err(ClientError::UnknownContact(query.to_owned()).into())
}

async fn inbox(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let mut events = Vec::new();
    if !args.offline {
        events = client.receive(args.wait).await?;
        print_events(ctx, &client, &events)?;
    }
    let names = names(&client)?;
    match &args.conversation {
        Some(q) => {
            let conv = resolve_conversation(&client, q)?;
            let messages = client.messages(&conv, args.limit)?;
            ctx.say(format!(
                "— {} —",
                conversation_title(&client, &conv, &names)
            ));
            for m in &messages {
                ctx.say(message_line(m, &names));
            }
            let marked = if args.no_read || args.offline {
                0
            } else {
                client.mark_read(&conv).await?
            };
            ctx.emit(json!({"events": events, "messages": messages, "marked_read": marked}));
        }
        None => {
            let list = client.conversations()?;
            if list.is_empty() {
                ctx.say("no messages");
            }
            for (conv, unread, last) in &list {
                ctx.say(format!(
                    "{:<28} {:>3} unread  {}",
                    conversation_title(&client, conv, &names),
                    unread,
                    message_line(last, &names)
                ));
            }
            let list: Vec<Value> = list
                .iter()
                .map(|(c, u, m)| json!({"conversation": c, "unread": u, "last": m}))
                .collect();
            ctx.emit(json!({"events": events, "conversations": list}));
        }
    }
    ctx.keep(&client);
    Ok(())
}

fn progress_bar(ctx: &Ctx, total: u64, what: &str) -> ProgressBar {
    if ctx.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

async fn attach(ctx: &Ctx, args: AttachArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    if args.resume {
        let pending = client.pending_uploads()?;
        if pending.is_empty() {
            ctx.say("no interrupted upload");
        }
        let mut sent = Vec::new();
        for p in pending {
            let bar = progress_bar(ctx, p.size, "resuming");
            let b = bar.clone();
            let m = client
                .resume_upload(&p.attachment_id, &move |done, _| {
                    b.set_position(done);
                    true
                })
                .await?;
            bar.finish_and_clear();
            ctx.say(format!("sent {} ({})", m.body, p.attachment_id));
            sent.push(m);
        }
        ctx.emit(json!(sent));
        ctx.keep(&client);
        return Ok(());
    }
    let (Some(to), Some(file)) = (args.to, args.file) else {
        return Err(CliError::usage(
            "give a recipient and a file",
            "cachet attach camille scan.pdf",
        ));
    };
    let size = std::fs::metadata(&file)
        .map_err(|e| ClientError::Io {
            path: file.clone(),
            source: e,
        })?
        .len();
    let conv = if args.group {
        Conversation::Group(client.find_group(&to)?.group_id)
    } else if args.case {
        Conversation::Case(client.find_case(&to)?.case_id)
    } else {
        Conversation::Direct(client.find_contact(&to)?.user_id)
    };
    let bar = progress_bar(ctx, size, "encrypting and uploading");
    let b = bar.clone();
    let result = client
        .send_file(&conv, &file, &move |done, _| {
            b.set_position(done);
            true
        })
        .await;
    bar.finish_and_clear();
    let m = result?;
    ctx.say(format!(
        "sent {} ({} bytes) to {to} as attachment {}",
        m.body,
        size,
        m.attachment_id.as_deref().unwrap_or("?")
    ));
    ctx.emit(json!(m));
    ctx.keep(&client);
    Ok(())
}

async fn fetch(ctx: &Ctx, args: FetchArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let list = client.attachments()?;
    let Some(id) = args.attachment else {
        let names = names(&client)?;
        if list.is_empty() {
            ctx.say("no attachments; receive with `cachet inbox`");
        }
        for a in &list {
            ctx.say(format!(
                "{}  {:<30} {:>12} bytes  from {}",
                a.attachment_id,
                a.file_name,
                a.size,
                who(&names, &a.sender_id)
            ));
        }
        ctx.emit(json!(list));
        return Ok(());
    };
    let info =
        list.iter()
            .find(|a| a.attachment_id == id)
            .ok_or_else(|| ClientError::NotFound {
                kind: "attachment",
                id: id.clone(),
            })?;
    let dest = if args.store {
        None
    } else {
        Some(
            args.output
                .unwrap_or_else(|| PathBuf::from(&info.file_name)),
        )
    };
    if let Some(d) = &dest {
        if d.exists() && !args.force {
            return Err(CliError::usage(
                format!("{} already exists", d.display()),
                "choose another path with -o, or pass --force to overwrite",
            ));
        }
    }
    let bar = progress_bar(ctx, info.size, "downloading");
    let b = bar.clone();
    let result = client
        .fetch_attachment(&id, dest.as_deref(), args.force, &move |done, _| {
            b.set_position(done);
            true
        })
        .await;
    bar.finish_and_clear();
    let size = result?;
    match &dest {
        Some(d) => ctx.say(format!("saved {} ({size} bytes, checked)", d.display())),
        None => ctx.say(format!(
            "stored {} ({size} bytes, checked) in the profile's encrypted file store",
            info.file_name
        )),
    }
    ctx.emit(json!({"attachment_id": id, "size": size, "path": dest}));
    ctx.keep(&client);
    Ok(())
}

async fn group(ctx: &Ctx, args: GroupArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    match args.action.unwrap_or(GroupAction::List) {
        GroupAction::List => {
            let groups = client.groups()?;
            let names = names(&client)?;
            if groups.is_empty() {
                ctx.say("no groups");
            }
            for g in &groups {
                let members: Vec<String> = g.members.iter().map(|m| who(&names, m)).collect();
                ctx.say(format!(
                    "{:<20} {}  {}",
                    g.name,
                    g.group_id,
                    members.join(", ")
                ));
            }
            ctx.emit(json!(groups));
        }
        GroupAction::Create { name, members } => {
            let mut ids = Vec::new();
            for m in &members {
                ids.push(client.find_contact(m)?.user_id);
            }
            let g = client.create_group(&name, &ids).await?;
            ctx.say(format!(
                "created group {} ({}) with {} members",
                g.name,
                g.group_id,
                g.members.len()
            ));
            ctx.emit(json!(g));
        }
        GroupAction::Send { group, text } => {
            let g = client.find_group(&group)?;
            let text = join(&text);
            let m = client.send_group_text(&g.group_id, &text).await?;
            ctx.say(format!("sent to group {}: \"{text}\"", g.name));
            ctx.emit(json!(m));
        }
    }
    ctx.keep(&client);
    Ok(())
}

async fn case(ctx: &Ctx, args: CaseArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let names_now = names(&client)?;
    match args.action.unwrap_or(CaseAction::List) {
        CaseAction::List => {
            let cases = client.cases().await?;
            if cases.is_empty() {
                ctx.say("no cases");
            }
            for c in &cases {
                ctx.say(format!(
                    "{:<30} {}  {} participant(s)",
                    format!("\"{}\"", c.title),
                    c.case_id,
                    c.participants.len()
                ));
            }
            ctx.emit(json!(cases));
        }
        CaseAction::Create {
            title,
            participants,
            fields,
        } => {
            let mut ids = Vec::new();
            for p in &participants {
                ids.push(client.find_contact(p.trim())?.user_id);
            }
            let mut map = BTreeMap::new();
            for f in &fields {
                let (k, v) = f.split_once('=').ok_or_else(|| {
                    CliError::usage(
                        format!("field {f:?} is not NAME=VALUE"),
                        "e.g. --field reason=cough",
                    )
                })?;
                map.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let c = client.create_case(&title, &map, &ids).await?;
            ctx.say(format!(
                "opened case \"{}\" ({}) with {} participant(s)",
                c.title,
                c.case_id,
                c.participants.len()
            ));
            ctx.emit(json!(c));
        }
        CaseAction::Send { case, text } => {
            let c = find_case(&client, &case).await?;
            let text = join(&text);
            let m = client.send_case_message(&c.case_id, &text).await?;
            ctx.say(format!("sent in case \"{}\": \"{text}\"", c.title));
            ctx.emit(json!(m));
        }
        CaseAction::Add { case, participants } => {
            let c = find_case(&client, &case).await?;
            let mut ids = Vec::new();
            for p in &participants {
                ids.push(client.find_contact(p)?.user_id);
            }
            let c = client.add_case_participants(&c.case_id, &ids).await?;
            ctx.say(format!(
                "case \"{}\" now has {} participant(s); they can read its whole history",
                c.title,
                c.participants.len()
            ));
            ctx.emit(json!(c));
        }
        CaseAction::Show { case } => {
            let c = find_case(&client, &case).await?;
            client.fetch_case_history(&c.case_id).await?;
            ctx.say(format!("— case \"{}\" —", c.title));
            for (k, v) in &c.fields {
                ctx.say(format!("  {k}: {v}"));
            }
            let messages = client.messages(&Conversation::Case(c.case_id.clone()), 1000)?;
            for m in &messages {
                ctx.say(message_line(m, &names_now));
            }
            ctx.emit(json!({"case": c, "messages": messages}));
        }
    }
    ctx.keep(&client);
    Ok(())
}

async fn find_case(client: &Client, query: &str) -> Result<cachet_client::Case> {
    match client.find_case(query) {
        Ok(c) => Ok(c),
        Err(ClientError::NotFound { .. }) => {
            let all = client.cases().await?;
            all.into_iter()
                .find(|c| c.case_id == query || c.title == query)
                .ok_or_else(|| {
                    ClientError::NotFound {
                        kind: "case",
                        id: query.to_owned(),
                    }
                    .into()
                })
        }
        Err(e) => Err(e.into()),
    }
}

async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let client = ctx.unlocked()?;
    let c = client.find_contact(&args.contact)?;
    // Always compare against the keys the server shows now.
    if let Some(report) = client.refresh_contact(&c.user_id).await? {
        eprintln!("{}", render::key_change(&report));
    }
    let c = client.find_contact(&c.user_id)?;
    if args.reset {
        client.mark_unverified(&c)?;
        ctx.say(format!("{} is no longer verified", c.alias));
        ctx.emit(json!({"verified": false}));
        ctx.keep(&client);
        return Ok(());
    }
    if args.accept {
        if !matches!(c.trust, TrustState::KeyChanged { .. }) {
            return Err(CliError::usage(
                format!(
                    "the keys of {} did not change since you verified them ({}): nothing to accept",
                    c.alias,
                    c.trust.label()
                ),
                format!("`cachet verify {}` shows the safety number", c.alias),
            ));
        }
        let c = client.accept_key_change(&c)?;
        ctx.say(format!(
            "accepted the new keys of {} (version {}): messages go to them again; they are unverified until you compare safety numbers (`cachet verify {}`)",
            c.alias, c.key_version, c.alias
        ));
        ctx.emit(json!(c));
        ctx.keep(&client);
        return Ok(());
    }
    if let Some(hex_payload) = &args.scanned {
        let bytes = hex::decode(hex_payload.trim()).map_err(|_| {
            CliError::usage(
                "the scanned payload is not hex",
                "paste the hex shown under the QR code",
            )
        })?;
        let c = client.verify_scanned(&c, &bytes)?;
        ctx.say(format!("the codes match: {} is verified", c.alias));
        ctx.emit(json!(c));
        ctx.keep(&client);
        return Ok(());
    }
    let number = client.safety_number(&c)?;
    if args.confirm {
        let c = client.mark_verified(&c)?;
        ctx.say(format!(
            "{} is verified (safety number {})",
            c.alias, number.digits
        ));
        ctx.emit(json!({"contact": c, "safety_number": number}));
        ctx.keep(&client);
        return Ok(());
    }
    ctx.say(format!(
        "Safety number with {} ({}):",
        c.alias,
        c.trust.label()
    ));
    let groups: Vec<&str> = number.digits.split(' ').collect();
    for row in groups.chunks(4) {
        ctx.say(format!("    {}", row.join(" ")));
    }
    if !args.no_qr {
        ctx.say(render::qr(&number.qr_payload));
    }
    ctx.say(format!("QR payload: {}", hex::encode(&number.qr_payload)));
    ctx.say(format!(
        "Compare these digits with {} in person. If they match: cachet verify {} --confirm",
        c.alias, c.alias
    ));
    ctx.emit(json!({"contact": c, "safety_number": number}));
    ctx.keep(&client);
    Ok(())
}

fn read_head(path: &Path) -> Result<cachet_client::SignedTreeHead> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?;
    cachet_client::parse_head(&text).map_err(|e| {
        CliError::usage(
            format!("{}: {e}", path.display()),
            "give a file written by `cachet audit --export`",
        )
    })
}

async fn audit(ctx: &Ctx, args: AuditArgs) -> Result<()> {
    if args.compare.len() > 2 {
        return Err(CliError::usage(
            "--compare takes one or two head files",
            "compare your head with one file, or two files with each other",
        ));
    }
    let client = ctx.unlocked()?;
    let report = client.audit_log(args.full).await?;
    ctx.say(format!("server     {}", report.server));
    ctx.say(format!(
        "log key    {}{}",
        report.log_key,
        if report.pinned_now {
            " (pinned now: trust on first use)"
        } else {
            " (pinned)"
        }
    ));
    ctx.say(format!(
        "head       {} blocks, root {}",
        report.size, report.root
    ));
    ctx.say(match report.previous_size {
        Some(n) => format!("consistent with the head saved before ({n} blocks); saved"),
        None => "no head saved before; saved".to_owned(),
    });
    if let Some(n) = report.chains_replayed {
        ctx.say(format!(
            "full audit: every block replayed, {n} chains follow the rules"
        ));
    }
    let mine = client
        .saved_head()?
        .ok_or_else(|| CliError::Io("no head was saved".into()))?;
    let mut compared = Vec::new();
    match args.compare.as_slice() {
        [] => {}
        [theirs] => {
            let other = read_head(theirs)?;
            client.compare_heads(&mine, &other).await?;
            ctx.say(format!(
                "{} ({} blocks) is consistent with this client's head",
                theirs.display(),
                other.size
            ));
            compared.push(theirs.display().to_string());
        }
        [a, b, ..] => {
            let (ha, hb) = (read_head(a)?, read_head(b)?);
            client.compare_heads(&ha, &hb).await?;
            ctx.say(format!(
                "{} ({} blocks) and {} ({} blocks) are consistent",
                a.display(),
                ha.size,
                b.display(),
                hb.size
            ));
            compared.push(a.display().to_string());
            compared.push(b.display().to_string());
        }
    }
    if let Some(path) = &args.export {
        std::fs::write(path, cachet_client::format_head(&mine))
            .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
        ctx.say(format!("head written to {}", path.display()));
    }
    ctx.emit(json!({"audit": report, "compared": compared, "exported": args.export}));
    ctx.keep(&client);
    Ok(())
}

fn status(ctx: &Ctx) -> Result<()> {
    let client = ctx.open()?;
    let unlocked = client.resume()?;
    ctx.say(format!(
        "user      {} ({})",
        client.display_name(),
        client.user_id()
    ));
    ctx.say(format!("identifier {}", client.identifier()));
    ctx.say(format!("server    {}", client.server_url()));
    ctx.say(format!("keys      version {}", client.key_version()));
    ctx.say(format!("profile   {}", client.dir().display()));
    ctx.say(format!(
        "lock      {}{}",
        if unlocked { "unlocked" } else { "locked" },
        match client.failed_unlocks() {
            0 => String::new(),
            n => format!(" ({n} failed attempt(s) since the last unlock)"),
        }
    ));
    ctx.emit(json!({
        "user_id": client.user_id(),
        "display_name": client.display_name(),
        "server": client.server_url(),
        "key_version": client.key_version(),
        "unlocked": unlocked,
        "failed_unlocks": client.failed_unlocks(),
    }));
    Ok(())
}

/// An operator's public key as `add-operator` takes it: hex (the servers check its length).
fn operator_public_key(hex_key: &str) -> Result<Vec<u8>> {
    hex::decode(hex_key.trim()).map_err(|_| {
        CliError::usage(
            "the public key is not hex",
            "give the 32-byte Ed25519 key as 64 hex digits",
        )
    })
}

async fn server(args: ServerArgs) -> Result<()> {
    match args.action {
        Some(ServerAction::AddOperator {
            name,
            public_key,
            data_dir,
            database_url,
        }) => {
            let key = operator_public_key(&public_key)?;
            cachet_server::add_operator(&data_dir, database_url.as_deref(), &name, &key).await?;
            match &database_url {
                Some(_) => println!("operator op:{name} registered in the server's PostgreSQL"),
                None => println!("operator op:{name} registered in {}", data_dir.display()),
            }
            Ok(())
        }
        None => {
            cachet_server::init_logging(args.log_json);
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            cachet_server::serve(args.config, shutdown).await?;
            Ok(())
        }
    }
}

fn operator_client(ctx: &Ctx, args: &OperatorArgs) -> Result<cachet_client::OperatorClient> {
    let server = ctx.server.clone().ok_or_else(|| {
        CliError::usage("no server given", "pass --server URL or set CACHET_SERVER")
    })?;
    let name = args.name.clone().unwrap_or_else(|| "anonymous".into());
    let key = match &args.key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Io(format!("cannot read operator key {}: {e}", path.display()))
            })?;
            let seed = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                CliError::usage(
                    format!("{} is not an operator key", path.display()),
                    "create one with `cachet operator keygen --out FILE`",
                )
            })?);
            cachet_crypto::SignKeyPair::from_seed_slice(&seed).map_err(|_| {
                CliError::usage(
                    format!("{} is not an operator key", path.display()),
                    "create one with `cachet operator keygen --out FILE`",
                )
            })?
        }
        // The status call is unsigned; any key will do for it.
        None if matches!(args.action, OperatorAction::Status) => {
            cachet_crypto::SignKeyPair::generate()
        }
        None => {
            return Err(CliError::usage(
                "no operator key given",
                "pass --name NAME --key FILE (or set CACHET_OPERATOR / CACHET_OPERATOR_KEY)",
            ))
        }
    };
    if args.name.is_none() && !matches!(args.action, OperatorAction::Status) {
        return Err(CliError::usage(
            "no operator name given",
            "pass --name NAME (as registered with `cachet server add-operator`)",
        ));
    }
    Ok(cachet_client::OperatorClient::new(
        &server,
        &name,
        key,
        ctx.ca.as_deref(),
    )?)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| CliError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))
}

fn vault_status_json(s: &cachet_proto::v1::VaultStatus) -> Value {
    json!({
        "initialised": s.initialised,
        "sealed": s.sealed,
        "shares_entered": s.shares_entered,
        "threshold": s.threshold,
        "shares": s.shares,
        "entered_by": s.entered_by,
    })
}

fn say_vault_status(ctx: &Ctx, s: &cachet_proto::v1::VaultStatus) {
    let state = match (s.initialised, s.sealed) {
        (false, _) => "unprotected (no master key yet: `cachet operator init`)".to_owned(),
        (true, true) => format!(
            "SEALED: {} of {} shares entered{}",
            s.shares_entered,
            s.threshold,
            if s.entered_by.is_empty() {
                String::new()
            } else {
                format!(" (by {})", s.entered_by.join(", "))
            }
        ),
        (true, false) => format!("unsealed ({} of {} shares open it)", s.threshold, s.shares),
    };
    ctx.say(format!("vault     {state}"));
}

fn hand_out_shares(
    ctx: &Ctx,
    split: &SplitArgs,
    shares: &cachet_proto::v1::VaultShares,
) -> Result<()> {
    if !shares.sealed_tokens.is_empty() {
        return hand_out_sealed_shares(ctx, split, shares);
    }
    match &split.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display())))?;
            let mut files = Vec::new();
            for (i, token) in shares.tokens.iter().enumerate() {
                let path = dir.join(format!("share-{}.txt", i + 1));
                write_private(&path, &format!("{token}\n"))?;
                files.push(path.display().to_string());
            }
            ctx.say(format!(
                "{} shares written to {} (any {} open the server). Give each to one holder and delete the files.",
                shares.tokens.len(),
                dir.display(),
                split.threshold
            ));
            ctx.emit(json!({ "share_files": files }));
        }
        None => {
            ctx.say(format!(
                "{} shares (any {} open the server). Give each to one holder; they are not shown again:",
                shares.tokens.len(),
                split.threshold
            ));
            for token in &shares.tokens {
                ctx.say(format!("  {token}"));
            }
            ctx.emit(json!({ "shares": shares.tokens }));
        }
    }
    Ok(())
}

/// Shares sealed to named holders: safe to pass around, each opens only with its
/// holder's operator key.
fn hand_out_sealed_shares(
    ctx: &Ctx,
    split: &SplitArgs,
    shares: &cachet_proto::v1::VaultShares,
) -> Result<()> {
    let pairs = shares.holders.iter().zip(&shares.sealed_tokens);
    match &split.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display())))?;
            let mut files = Vec::new();
            for (i, (holder, sealed)) in pairs.enumerate() {
                let path = dir.join(format!("share-{}-{holder}.sealed.txt", i + 1));
                write_private(&path, &format!("{sealed}\n"))?;
                files.push(path.display().to_string());
            }
            ctx.say(format!(
                "{} shares written to {}, each sealed to its holder's key (any {} open the server). Send each file to its holder.",
                files.len(),
                dir.display(),
                split.threshold
            ));
            ctx.emit(json!({ "share_files": files, "holders": shares.holders }));
        }
        None => {
            ctx.say(format!(
                "{} shares, each sealed to its holder's key (any {} open the server):",
                shares.sealed_tokens.len(),
                split.threshold
            ));
            for (holder, sealed) in pairs {
                ctx.say(format!("  {holder}: {sealed}"));
            }
            ctx.emit(json!({ "sealed_shares": shares.sealed_tokens, "holders": shares.holders }));
        }
    }
    Ok(())
}

async fn operator(ctx: &Ctx, args: OperatorArgs) -> Result<()> {
    if let OperatorAction::Keygen { out } = &args.action {
        let key = cachet_crypto::SignKeyPair::generate();
        let seed = zeroize::Zeroizing::new(hex::encode(key.expose_seed()));
        write_private(out, &format!("{}\n", seed.as_str()))?;
        let public = hex::encode(key.public().as_bytes());
        ctx.say(format!("operator key written to {}", out.display()));
        ctx.say(format!("public key: {public}"));
        ctx.say(format!(
            "on the server host: cachet server add-operator NAME {public} --data-dir DIR"
        ));
        ctx.emit(json!({ "key_file": out.display().to_string(), "public_key": public }));
        return Ok(());
    }
    let op = operator_client(ctx, &args)?;
    match args.action {
        OperatorAction::Keygen { .. } => Ok(()),
        OperatorAction::Status => {
            let s = op.vault_status().await?;
            say_vault_status(ctx, &s);
            ctx.emit(vault_status_json(&s));
            Ok(())
        }
        OperatorAction::Init(split) => {
            let shares = op
                .split(Split::Init, split.shares, split.threshold, &split.holders)
                .await?;
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Rotate(split) => {
            let shares = op
                .split(Split::Rotate, split.shares, split.threshold, &split.holders)
                .await?;
            ctx.say("master key rotated; the old shares no longer open the server");
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Reshare(split) => {
            let shares = op
                .split(
                    Split::Reshare,
                    split.shares,
                    split.threshold,
                    &split.holders,
                )
                .await?;
            ctx.say("master key re-shared; the old shares no longer open the server");
            hand_out_shares(ctx, &split, &shares)
        }
        OperatorAction::Unseal { share_file } => {
            let token = match share_file {
                Some(path) => {
                    zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                        CliError::Io(format!("cannot read {}: {e}", path.display()))
                    })?)
                }
                None => zeroize::Zeroizing::new(
                    rpassword::prompt_password(
                        "share (cachet-share-v1:... or cachet-sealed-share-v1:...): ",
                    )
                    .map_err(|_| {
                        CliError::usage(
                            "no share given",
                            "pass --share-file FILE or run on a terminal",
                        )
                    })?,
                ),
            };
            let s = op.unseal(&token).await?;
            say_vault_status(ctx, &s);
            ctx.emit(vault_status_json(&s));
            Ok(())
        }
        OperatorAction::Seal => {
            let s = op.seal().await?;
            say_vault_status(ctx, &s);
            ctx.emit(vault_status_json(&s));
            Ok(())
        }
        OperatorAction::Export { out } => {
            let doc = op.export().await?;
            std::fs::write(&out, &doc)
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", out.display())))?;
            ctx.say(format!(
                "sealed key material written to {} (no secret in it; the shares are still needed)",
                out.display()
            ));
            ctx.emit(json!({ "file": out.display().to_string() }));
            Ok(())
        }
        OperatorAction::Import { file } => {
            let doc = std::fs::read(&file)
                .map_err(|e| CliError::Io(format!("cannot read {}: {e}", file.display())))?;
            let s = op.import(doc).await?;
            say_vault_status(ctx, &s);
            ctx.emit(vault_status_json(&s));
            Ok(())
        }
        OperatorAction::Revoke { user_id, reason } => {
            let profile = op.revoke_keys(&user_id, &reason).await?;
            let version = profile.current_keys.as_ref().map_or(0, |k| k.key_version);
            ctx.say(format!(
                "keys of {} ({}) revoked (key version {version}); their contacts are told, and the revocation is in the audit log and the trust log",
                profile.user_id, profile.display_name
            ));
            ctx.emit(json!({
                "user_id": profile.user_id,
                "display_name": profile.display_name,
                "revoked_key_version": version,
            }));
            Ok(())
        }
        OperatorAction::VerifyProfile { user_id, note } => {
            let profile = op.verify_profile(&user_id, &note).await?;
            ctx.say(format!(
                "profile of {} ({}) marked verified; recorded in the audit log and the trust log",
                profile.user_id, profile.display_name
            ));
            ctx.emit(json!({
                "user_id": profile.user_id,
                "display_name": profile.display_name,
                "verified": profile.verified,
            }));
            Ok(())
        }
        OperatorAction::Audit { expect_head } => {
            let report = op.audit().await?;
            if let Some(kept) = expect_head {
                let kept = hex::decode(kept.trim()).map_err(|_| {
                    CliError::usage(
                        "--expect-head is not hex",
                        "give the hash printed by an earlier audit",
                    )
                })?;
                let extends = kept == cachet_proto::audit::GENESIS_HASH
                    || report.entries.iter().any(|e| e.hash == kept);
                if !extends {
                    return Err(ClientError::Integrity(
                        "the audit log no longer contains the head you kept: its history was rewritten".into(),
                    )
                    .into());
                }
            }
            for e in &report.entries {
                ctx.say(format!(
                    "{:>5}  {}  {:<14} {:<18} {}  {}",
                    e.seq,
                    render::time(e.timestamp),
                    e.operator_id,
                    e.action,
                    e.opened_subject,
                    e.opened_detail
                ));
            }
            let head = hex::encode(&report.head);
            ctx.say(format!(
                "audit log OK: {} entries, hash chain intact; head {head}",
                report.entries.len()
            ));
            ctx.emit(json!({
                "entries": report.entries.len(),
                "head": head,
                "log": report.entries.iter().map(|e| json!({
                    "seq": e.seq,
                    "timestamp": e.timestamp,
                    "operator_id": e.operator_id,
                    "action": e.action,
                    "subject": e.opened_subject,
                    "detail": e.opened_detail,
                })).collect::<Vec<_>>(),
            }));
            Ok(())
        }
    }
}

fn recovery_password(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("CACHET_RECOVERY_PASSWORD") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "no recovery password",
            "set CACHET_RECOVERY_PASSWORD or run in a terminal",
        ));
    }
    let a = rpassword::prompt_password("Recovery password: ").unwrap_or_default();
    if confirm {
        let b = rpassword::prompt_password("Repeat it: ").unwrap_or_default();
        if a != b {
            return Err(CliError::usage(
                "the two entries differ",
                "run the command again",
            ));
        }
    }
    Ok(a)
}

async fn recovery_code(file: Option<&Path>, identifier: &str, which: &str) -> Result<String> {
    match file {
        Some(file) => {
            for _ in 0..100 {
                if let Some(code) = cachet_cli::demo::dev_code(file, identifier) {
                    return Ok(code);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(CliError::usage(
                format!("no code for {identifier} in {}", file.display()),
                "name the dev-codes.txt of a server run with the dev notifier",
            ))
        }
        None => prompt_line(&format!("Code from the {which} sent to {identifier}: "))
            .ok_or_else(|| CliError::usage("no one-time code given", "type the code when asked")),
    }
}

async fn recovery_checks(
    servers: &cachet_client::recovery::RecoveryServers,
    identifier: &str,
    codes: &RecoveryCodes,
) -> Result<cachet_client::recovery::Checks> {
    let started = servers.start(identifier).await?;
    let data = recovery_code(codes.dev_codes.as_deref(), identifier, "data server").await?;
    let key = recovery_code(codes.key_dev_codes.as_deref(), identifier, "key server").await?;
    Ok(started.with_codes(&data, &key))
}

async fn recovery(ctx: &Ctx, args: RecoveryArgs) -> Result<()> {
    use cachet_client::recovery::RecoveryServers;
    let params = cachet_recovery::HardeningParams::RECOMMENDED;
    match args.action {
        RecoveryAction::Enable { codes } => {
            let client = ctx.unlocked()?;
            let password = recovery_password(true)?;
            let servers = RecoveryServers::pinned(
                client.server_url(),
                &codes.key_server,
                params,
                client.pinned_certificate(),
            )?;
            let checks = recovery_checks(&servers, client.identifier(), &codes).await?;
            client
                .enable_recovery(&codes.key_server, &checks, &password, params)
                .await?;
            ctx.emit(json!({ "recovery": "enabled", "user_id": client.user_id() }));
            Ok(())
        }
        RecoveryAction::Restore {
            identifier,
            name,
            codes,
        } => {
            if Client::exists(&ctx.profile) {
                return Err(ClientError::ProfileExists(ctx.profile.clone()).into());
            }
            let server = ctx.server.clone().ok_or_else(|| {
                CliError::usage("no server URL", "pass --server URL or set CACHET_SERVER")
            })?;
            let secret = env_secret().ok_or_else(|| {
                CliError::usage(
                    "no PIN or passphrase for the new profile",
                    "set CACHET_PIN (5 digits) or CACHET_PASSPHRASE",
                )
            })?;
            secret.check_new()?;
            let password = recovery_password(false)?;
            let servers =
                RecoveryServers::pinned(&server, &codes.key_server, params, ctx.ca.as_deref())?;
            let checks = recovery_checks(&servers, &identifier, &codes).await?;
            let recovered = Client::recover(
                &ctx.profile,
                &servers,
                &identifier,
                &checks,
                &password,
                &name,
                &secret,
                ctx.options(),
            )
            .await?;
            ctx.emit(json!({
                "recovered": recovered.client.user_id(),
                "key_version": recovered.client.key_version(),
                "recovered_generations": recovered.recovered_generations,
            }));
            Ok(())
        }
    }
}

async fn keyserver(args: KeyserverArgs) -> Result<()> {
    match args.action {
        Some(KeyserverAction::Refresh {
            data_server,
            operator,
            operator_key,
            key_server,
        }) => {
            let text = std::fs::read_to_string(&operator_key)
                .map_err(|e| CliError::Io(format!("{}: {e}", operator_key.display())))?;
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    CliError::usage(
                        "the operator key is not 32 bytes of hex",
                        "the file holds the operator's Ed25519 seed as 64 hex digits",
                    )
                })?;
            let key = cachet_crypto::SignKeyPair::from_seed(seed);
            let n = cachet_keyserver::refresh_shares(&key_server, &data_server, &operator, &key)
                .await?;
            println!("refreshed the key shares of {n} account(s)");
            Ok(())
        }
        Some(KeyserverAction::AddOperator {
            name,
            public_key,
            data_dir,
            database_url,
        }) => {
            let key = operator_public_key(&public_key)?;
            let config = cachet_keyserver::KeyServerConfig {
                data_dir: Some(data_dir.clone()),
                database_url: database_url.clone(),
                ..Default::default()
            };
            if !cachet_keyserver::add_operator(&config, &name, &key).await? {
                return Err(CliError::usage(
                    format!("an operator named {name:?} exists already"),
                    "choose another name",
                ));
            }
            match &database_url {
                Some(_) => println!("operator op:{name} registered in the key server's PostgreSQL"),
                None => println!(
                    "operator op:{name} registered in the key server at {}",
                    data_dir.display()
                ),
            }
            Ok(())
        }
        None => {
            let config = args.config.merged()?;
            cachet_http::init_logging(config.log_json());
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            cachet_keyserver::serve(config, shutdown).await?;
            Ok(())
        }
    }
}
