//! The XRDS discovery documents: the OP identifier's (directed identity), a claimed identifier's
//! (signon) and a hosted domain's (`site-xrds`), and the domain's `host-meta` line.

use crate::{NS_AX, NS_OAUTH, NS_PAPE, TYPE_SERVER, TYPE_SIGNON};

const UI_POPUP: &str = "http://specs.openid.net/extensions/ui/1.0/mode/popup";
const UI_ICON: &str = "http://specs.openid.net/extensions/ui/1.0/icon";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn service(out: &mut String, priority: u32, service_type: &str, endpoint: &str) {
    out.push_str(&format!("  <Service priority=\"{priority}\">\n"));
    for it in [service_type, NS_AX, UI_POPUP, UI_ICON, NS_PAPE, NS_OAUTH] {
        out.push_str(&format!("  <Type>{it}</Type>\n"));
    }
    out.push_str(&format!("  <URI>{}</URI>\n", escape(endpoint)));
    out.push_str("  </Service>\n");
}

fn document(body: &str, extra_ns: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xrds:XRDS xmlns:xrds=\"xri://$xrds\" xmlns=\"xri://$xrd*($v*2.0)\"{extra_ns}>\n  <XRD>\n{body}  </XRD>\n</xrds:XRDS>\n"
    )
}

/// The OP identifier's XRDS: one `server` service at `endpoint`.
pub fn op_identifier_xrds(endpoint: &str) -> String {
    let mut body = String::new();
    service(&mut body, 0, TYPE_SERVER, endpoint);
    document(&body, "")
}

/// A claimed identifier's XRDS: one `signon` service at `endpoint`, the `op_endpoint` of our
/// assertions.
pub fn claimed_id_xrds(endpoint: &str) -> String {
    let mut body = String::new();
    service(&mut body, 0, TYPE_SIGNON, endpoint);
    document(&body, "")
}

/// A hosted domain's XRDS: its canonical id, a `server` service at the domain's endpoint and the
/// template of its users' XRDS (`{%uri}` stands for the claimed identifier). Unsigned: see
/// `docs/legacy.md`.
pub fn site_xrds(domain: &str, endpoint: &str, user_xrds_template: &str) -> String {
    let mut body = format!("  <CanonicalID>{}</CanonicalID>\n", escape(domain));
    service(&mut body, 0, TYPE_SERVER, endpoint);
    body.push_str("  <Service priority=\"0\">\n");
    body.push_str("  <Type>http://www.iana.org/assignments/relation/describedby</Type>\n");
    body.push_str("  <MediaType>application/xrds+xml</MediaType>\n");
    body.push_str(&format!(
        "  <openid:URITemplate>{}</openid:URITemplate>\n",
        escape(user_xrds_template)
    ));
    body.push_str("  </Service>\n");
    document(&body, " xmlns:openid=\"http://namespace.google.com/openid/xmlns\"")
}

/// A hosted domain's `host-meta`: one `Link:` line naming its `site-xrds`.
pub fn host_meta(site_xrds_url: &str) -> String {
    format!(
        "Link: <{site_xrds_url}>; rel=\"describedby http://reltype.google.com/openid/xrd-op\"; type=\"application/xrds+xml\"\n"
    )
}
