//! XML, one way (quick-xml): escaping text into the documents the gateway
//! writes, and reading the fields of the documents stores send.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, Event};

/// `text` escaped for an XML element or attribute.
pub fn escape(text: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// The character an entity or character reference (`&amp;`, `&#x41;`) stands for.
pub fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c);
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .and_then(|s| s.chars().next())
        .ok_or_else(|| format!("unknown entity &{name};"))
}

/// Checks a document's end against the elements still open (outermost
/// first): a document that ends inside one is cut short, or no XML.
pub fn check_ended(open: &[Vec<u8>]) -> Result<(), String> {
    match open.last() {
        Some(name) => Err(format!(
            "the document ends inside <{}>",
            String::from_utf8_lossy(name)
        )),
        None => Ok(()),
    }
}

/// The text of the first `<name>` element anywhere in `xml`, entities resolved.
pub fn field(xml: &[u8], name: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(t) if inside => text.push_str(&t.decode().ok()?),
            Event::GeneralRef(r) if inside => text.push(resolve_reference(&r).ok()?),
            Event::End(_) if inside => return Some(text),
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_with_their_entities() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; &#x63;</Message></Error>";
        assert_eq!(field(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(field(xml, "Message").as_deref(), Some("a <b> & c"));
        assert_eq!(field(xml, "RequestId"), None);
        assert_eq!(field(b"not xml <", "Code"), None);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
