//! Formatting for people: times, QR codes, warnings.

use cachet_client::KeyChangeReport;

/// `YYYY-MM-DD HH:MM:SS` (UTC) from milliseconds since the epoch.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A QR code of `payload` drawn with Unicode half blocks (two rows per line).
pub fn qr(payload: &[u8]) -> String {
    match qrcode::QrCode::new(payload) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}

/// The first bytes of `bytes` in hex, for showing ciphertext.
pub fn hex_snippet(bytes: &[u8], n: usize) -> String {
    let shown = hex::encode(&bytes[..bytes.len().min(n)]);
    if bytes.len() > n {
        format!("{shown}…")
    } else {
        shown
    }
}

/// The text shown when a contact's keys change: loud when a verification was lost.
pub fn key_change(report: &KeyChangeReport) -> String {
    if report.is_alarm() {
        format!(
            "\n!!! WARNING: the keys of {name} CHANGED (version {old} -> {new}) and the change was NOT\n\
             !!! authorised by the key you verified: {note}.\n\
             !!! Someone may be impersonating {name}. Nothing will be sent to them (no message, no\n\
             !!! case or attachment key) until you compare safety numbers again (`cachet verify {name}`)\n\
             !!! or accept the new keys (`cachet verify {name} --accept`).\n",
            name = report.alias,
            old = report.old_version,
            new = report.new_version,
            note = report.note,
        )
    } else if report.was_verified {
        format!(
            "keys of {} changed (version {} -> {}); still verified: {}",
            report.alias, report.old_version, report.new_version, report.note
        )
    } else {
        format!(
            "keys of {} changed (version {} -> {}), for example after a reinstallation; they are not verified",
            report.alias, report.old_version, report.new_version
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn qr_draws() {
        let q = qr(&[1u8; 65]);
        assert!(q.lines().count() > 10);
    }
}
