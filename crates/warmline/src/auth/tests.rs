use super::*;

const ADMIN: &str = "the-admin-secret";

#[test]
fn planes_by_path() {
    assert_eq!(Plane::of("/api/chat"), Plane::Data);
    assert_eq!(Plane::of("/v1/models"), Plane::Data);
    assert_eq!(Plane::of("/warmlinex"), Plane::Data);
    assert_eq!(Plane::of("/metrics"), Plane::Monitoring);
    assert_eq!(Plane::of("/warmline/health"), Plane::Monitoring);
    assert_eq!(Plane::of("/warmline/charts/latency.svg"), Plane::Monitoring);
    for path in [
        "/warmline/settings",
        "/warmline/logs",
        "/warmline/requests",
        "/warmline/daemon",
        "/warmline/models/warm",
        "/warmline/cache",
        "/warmline/health/x",
        "/warmline/",
    ] {
        assert_eq!(Plane::of(path), Plane::Control, "{path}");
    }
}

#[test]
fn tokens_are_matched_in_full_and_never_shown() {
    let tokens = Tokens::new(
        vec![
            Token {
                name: "alice".into(),
                secret: "s3cret-a".into(),
            },
            Token {
                name: "bob".into(),
                secret: "s3cret-b".into(),
            },
        ],
        Some(AdminKey::from_secret(ADMIN)),
    );
    let name = |s: &[u8]| tokens.identify(&digest(s)).map(|t| t.name.clone());
    assert_eq!(name(b"s3cret-b").as_deref(), Some("bob"));
    assert!(name(b"s3cret").is_none());
    assert!(name(b"s3cret-bb").is_none());
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains(ADMIN),
        "{shown}"
    );
}

#[test]
fn the_admin_token_file_is_made_once_and_read_back() {
    let dir = std::env::temp_dir().join(format!("warmline-admin-{}", std::process::id()));
    let path = dir.join("admin-token");
    let made = AdminKey::load_or_create(&path).expect("create");
    let token = read_admin_token(&path).expect("token");
    assert_eq!(token.len(), 64);
    assert!(made.matches(&digest(token.as_bytes())));
    let again = AdminKey::load_or_create(&path).expect("read");
    assert!(again.matches(&digest(token.as_bytes())), "the same token");
    let _ = std::fs::remove_dir_all(dir);
}
