//! What a certificate says about itself, read with x509-parser: its subject and issuer, the
//! names it is for, its dates and whether it is a CA. The verifier uses the dates of a pinned
//! certificate; everything else only feeds messages. The input may come from a hostile server:
//! parsing never panics, and a certificate that does not parse is simply not described.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The parts of one certificate a person needs to see in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The subject as a distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Subject and issuer are the same name: a self-signed certificate (or a root CA).
    pub self_issued: bool,
    /// `basicConstraints CA:TRUE` (what OpenSSL 3 writes into `openssl req -x509` output).
    pub is_ca: bool,
    /// DNS names and IP addresses of the subjectAltName extension, in order.
    pub names: Vec<String>,
    /// The subject's common name, which the name check ignores (only subjectAltName counts).
    pub common_name: Option<String>,
    /// Start of the validity period, seconds since the Unix epoch (UTC).
    pub not_before: i64,
    /// End of the validity period, seconds since the Unix epoch (UTC).
    pub not_after: i64,
}

impl CertInfo {
    /// Reads a DER certificate; `None` when it does not parse.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_string()),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let validity = cert.validity();
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            is_ca: cert.is_ca(),
            names,
            common_name,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The names for messages: `localhost, 127.0.0.1`, or a note that there are none.
    pub fn names_text(&self) -> String {
        if self.names.is_empty() {
            match &self.common_name {
                Some(cn) => format!(
                    "no name at all (it has no subjectAltName, and its common name {cn:?} is not \
                     used for the check)"
                ),
                None => "no name at all (it has no subjectAltName)".to_string(),
            }
        } else {
            self.names.join(", ")
        }
    }

    /// `valid from … until …`, for messages.
    pub fn validity_text(&self) -> String {
        format!(
            "valid from {} until {}",
            format_time(self.not_before),
            format_time(self.not_after)
        )
    }
}

fn ip_text(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(octets).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?).to_string()),
        _ => None,
    }
}

/// Seconds since the Unix epoch as `2025-03-01 12:00:00 UTC`.
pub(crate) fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day) in the
/// proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_time(1_735_689_599), "2024-12-31 23:59:59 UTC");
        assert_eq!(format_time(4_102_444_800), "2100-01-01 00:00:00 UTC");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn an_rcgen_certificate_is_described() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let info = CertInfo::parse(made.cert.der()).unwrap();
        assert_eq!(info.names, ["localhost", "127.0.0.1"]);
        assert!(info.self_issued);
        assert!(!info.is_ca);
        assert!(info.not_before < info.not_after);
        assert_eq!(CertInfo::parse(b"not a certificate"), None);
    }
}
