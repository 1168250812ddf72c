//! The report as AbuseIPDB's API v2 takes it: `POST /api/v2/report` with the key in the `Key`
//! header and the form fields `ip`, `categories` and `comment`.

use ipqbdb_store::ReportCandidate;

use crate::comment::CommentTemplate;

pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    pub ip: String,
    /// Comma-separated category numbers (a reason has one).
    pub categories: String,
    pub comment: String,
}

impl ReportRequest {
    pub fn new(c: &ReportCandidate, comment: &CommentTemplate) -> Self {
        ReportRequest {
            ip: c.key.to_string(),
            categories: c.reason.category.to_string(),
            comment: comment.render(c),
        }
    }

    /// The request body, exactly as sent.
    pub fn form(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("ip", &self.ip)
            .append_pair("categories", &self.categories)
            .append_pair("comment", &self.comment)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encodes_every_field() {
        let r = ReportRequest {
            ip: "45.33.32.156".into(),
            categories: "18".into(),
            comment: "ssh & more=1 é".into(),
        };
        assert_eq!(
            r.form(),
            "ip=45.33.32.156&categories=18&comment=ssh+%26+more%3D1+%C3%A9"
        );
    }
}
