//! `Host` and `Origin` headers as any client sends them, against the policies of
//! a loopback and an every-interface listener: nothing panics, and a name that is
//! not local never passes the Host check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::edge::origin::OriginPolicy;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (host, origin) = text.split_once('\n').unwrap_or((&text, ""));
    let patterns = vec!["https://*.example".to_owned(), origin.to_owned()];
    for listen in ["127.0.0.1:11435", "0.0.0.0:11435"] {
        let policy = OriginPolicy::new(&patterns)
            .with_control_origins(&patterns)
            .with_host_check(listen.parse().expect("listen address"));
        let allowed = policy.allows_host(host);
        let _ = policy.allows(origin, Some(host));
        let _ = policy.allows(host, None);
        let _ = policy.allows_control(origin);
        // A DNS name outside the local suffixes never passes.
        let name = host.trim().to_ascii_lowercase();
        if name.ends_with(".evil.example") && !name.contains(':') {
            assert!(!allowed, "{host:?} passed the Host check");
        }
    }
});
