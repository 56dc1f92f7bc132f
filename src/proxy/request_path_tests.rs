//! Kong's own expectations for normalize and escape (its kong.tools.uri unit tests, with
//! merged slashes as the router asks), the traversals a review found, and properties.

use proptest::prelude::*;

use super::*;

fn n(path: &str) -> String {
    normalize(path).unwrap_or_else(|e| panic!("{path}: {e}")).into_owned()
}

#[test]
fn paths_with_nothing_to_normalize_are_not_copied() {
    for path in ["/", "/a", "/a/", "/a/b/c", "/a/b/c/", "/bench", "/a-b_c~d"] {
        assert!(matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path), "{path}");
    }
    assert!(matches!(escape("/a/b?c=d"), Cow::Borrowed(_)));
}

#[test]
fn reserved_escapes_stay_in_upper_case_and_others_are_decoded() {
    assert_eq!(n("/a%2fb%2fc/"), "/a%2Fb%2Fc/");
    assert_eq!(n("/f%6f%6f"), "/foo");
    assert_eq!(n("/%6B%6f%6e%67"), "/kong");
    assert_eq!(n("/%20%21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"), "/ %21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D");
    assert_eq!(n("/endel%C3%B8st"), "/endeløst");
    // One pass: an escaped percent sign does not start another escape.
    assert_eq!(n("/a%252e%252e/b"), "/a%252e%252e/b");
}

/// A `%` that begins no escape makes the path malformed (nginx's 400): kept, it would let
/// an upstream that decodes once more see what the router did not.
#[test]
fn a_percent_sign_that_begins_no_escape_is_malformed() {
    for path in ["/a%zz", "/b%4", "/c%", "/%%36%31dmin", "/%g0"] {
        assert_eq!(normalize(path), Err(MalformedEscape), "{path}");
    }
}

/// Control characters stay escaped: a decoded path goes into X-Forwarded-Prefix, and no
/// field may carry a line break.
#[test]
fn escapes_of_control_characters_stay_escaped() {
    assert_eq!(n("/a%0d%0aX-Injected:%201/b"), "/a%0D%0AX-Injected: 1/b");
    assert_eq!(n("/%00/%7f/%1F"), "/%00/%7F/%1F");
}

#[test]
fn dot_segments_are_removed_and_slashes_merged() {
    for (raw, want) in [
        ("/%2E", "/"),
        ("/./", "/"),
        ("/.", "/"),
        ("/..", "/"),
        ("/../", "/"),
        ("/./.././../", "/"),
        ("//", "/"),
        ("/////", "/"),
        ("/a//b//", "/a/b/"),
        ("/a/b/c/./../../g", "/a/g"),
        ("mid/content=5/../6", "mid/6"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a./b../.c/..d", "/a./b../.c/..d"),
    ] {
        assert_eq!(n(raw), want, "{raw}");
    }
}

#[test]
fn kong_documents_get_path_with_this_example() {
    assert_eq!(n("/t/Abc%20123%C3%B8%2f/parent/..//test/./"), "/t/Abc 123ø%2F/test/");
}

/// Bytes that are not UTF-8 once decoded keep their escapes (Kong decodes them to raw
/// bytes, which no configured path can match): the rest is normalized as ever.
#[test]
fn escapes_of_bytes_that_are_not_utf8_are_kept() {
    // Kong's: "/ä/a./a/_\x99\xaf%2F%2F".
    assert_eq!(n("/%C3%A4/a/%2e./a%2E//a/%2e/./a/../a/%2e%2E/%5f%99%af%2f%2F"), "/ä/a./a/_%99%AF%2F%2F");
    assert_eq!(n("/%C3%A4/%99%af/%2e%2e/x"), "/ä/x");
    assert_eq!(n("/%61/%ff"), "/a/%FF");
    assert_eq!(n("/%C3"), "/%C3");
}

/// The paths a review sent: each reaches the route (and the upstream) by its normal form.
#[test]
fn traversals_and_disguises_come_out_plain() {
    for (raw, want) in [
        ("/open/../admin", "/admin"),
        ("/open/%2e%2e/admin", "/admin"),
        ("/open/%2E%2e/admin", "/admin"),
        ("/open/.%2e/admin", "/admin"),
        ("//admin/x", "/admin/x"),
        ("/%61dmin/x", "/admin/x"),
        ("/x/../admin/y", "/admin/y"),
        ("/demo/%7euser", "/demo/~user"),
        ("/../../etc/passwd", "/etc/passwd"),
    ] {
        assert_eq!(n(raw), want, "{raw}");
    }
    // An escaped slash is not a segment boundary, so it cannot climb.
    assert_eq!(n("/open/..%2Fadmin"), "/open/..%2Fadmin");
}

#[test]
fn escape_leaves_uri_characters_and_escapes_the_rest() {
    let safe = "/!#$%&'()*+,/:;=?@[]ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
    assert_eq!(escape(safe), safe);
    assert_eq!(escape("/a b/c d"), "/a%20b/c%20d");
    assert_eq!(escape("/a😀"), "/a%F0%9F%98%80");
    assert_eq!(escape("/endeløst"), "/endel%C3%B8st");
    assert_eq!(escape("/a\"<>\\^`{|}\u{7f}\n"), "/a%22%3C%3E%5C%5E%60%7B%7C%7D%7F%0A");
}

proptest! {
    /// Whatever the path, its normal form has no dot segment, no empty segment and no
    /// control character, and normalizing again changes nothing; escaped, it is only URI
    /// characters.
    #[test]
    fn the_normal_form_is_a_fixed_point_without_dot_segments(raw in "/([a-c./%0-9A-Fa-f]|%2[eE]|%2[fF]|%25|%C3%A4|%ff|%0[aAdD]| ){0,24}") {
        let Ok(once) = normalize(&raw).map(Cow::into_owned) else { return Ok(()) };
        prop_assert!(!once.bytes().any(|b| b.is_ascii_control()), "{}", once);
        prop_assert_eq!(n(&once), once.clone());
        prop_assert!(!once.contains("//"), "{}", once);
        for segment in once.split('/').skip(1) {
            prop_assert!(segment != "." && segment != "..", "{} from {}", once, raw);
        }
        prop_assert!(escape(&once).bytes().all(|c| c.is_ascii_graphic()), "{}", escape(&once));
    }

    /// A path with nothing to decode, no dot segment and no empty segment is its own
    /// normal form.
    #[test]
    fn plain_paths_are_their_own_normal_form(segments in proptest::collection::vec("[a-zA-Z0-9_~-]{1,6}", 0..6), slash in any::<bool>()) {
        let path = format!("/{}{}", segments.join("/"), if slash && !segments.is_empty() { "/" } else { "" });
        prop_assert_eq!(n(&path), path);
    }
}
