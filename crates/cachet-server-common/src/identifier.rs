//! The identifiers a one-time code can be sent to, checked the same way on both servers
//! (the key server must accept exactly what the data server registered).

/// Normalises an identifier and checks that it is an E.164 phone number or an e-mail
/// address. Returns the normalised form, or why it is neither.
pub fn check_identifier(identifier: &str) -> Result<String, &'static str> {
    let n = cachet_proto::normalise_identifier(identifier);
    if n.contains('@') {
        let ok = n.len() <= 254
            && n.matches('@').count() == 1
            && n.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !n.starts_with('.')
            && n.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            return Err("not an e-mail address");
        }
    } else {
        let digits = n.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not an E.164 phone number (+ and 8 to 15 digits) or an e-mail address");
        }
    }
    Ok(n)
}
