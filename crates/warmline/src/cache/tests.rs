use super::*;

#[test]
fn cache_control_directives_are_parsed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CACHE_CONTROL,
        "No-Cache, max-age=30".parse().expect("value"),
    );
    let control = Control::of(&headers);
    assert!(control.no_cache && !control.no_store);
    assert_eq!(control.max_age, Some(30));
    headers.insert(
        http::header::CACHE_CONTROL,
        "no-store".parse().expect("value"),
    );
    assert!(Control::of(&headers).no_store);
}

fn config(max_bytes: u64) -> CacheConfig {
    crate::Config::default()
        .cache
        .clone()
        .with_budget(max_bytes)
}

impl CacheConfig {
    fn with_budget(mut self, max_bytes: u64) -> CacheConfig {
        self.max_bytes = max_bytes;
        self
    }
}

#[test]
fn a_new_model_digest_changes_the_key_of_a_remembered_body() {
    let cache = Cache::new(&config(1 << 20)).expect("cache");
    let body = Bytes::from_static(br#"{"model":"m","prompt":"p","options":{"temperature":0}}"#);
    let key_of = |cache: &Cache| match cache.plan(KeyRoute::Generate, &HeaderMap::new(), &body, "")
    {
        Plan::Use(lookup) => lookup.store.key,
        Plan::Bypass(reason, _) => panic!("bypassed: {reason}"),
    };
    let digests = |d: &str| HashMap::from([("m:latest".to_owned(), d.to_owned())]);
    cache.set_digests(digests("aaa"));
    let first = key_of(&cache);
    assert_eq!(key_of(&cache), first, "remembered");
    cache.set_digests(digests("bbb"));
    assert_ne!(
        key_of(&cache),
        first,
        "a re-pulled model never reuses old keys"
    );
    cache.set_digests(HashMap::new());
    assert!(matches!(
        cache.plan(KeyRoute::Generate, &HeaderMap::new(), &body, ""),
        Plan::Bypass("unknown_model", None)
    ));
}

#[tokio::test]
async fn the_byte_budget_holds_within_five_percent() {
    let budget = 1 << 20;
    let cache = Cache::new(&config(budget)).expect("cache");
    for i in 0u8..=255 {
        for j in 0u8..12 {
            let lookup = Lookup {
                store: StoreKey {
                    key: CacheKey([i ^ j.wrapping_mul(31); 32].map(|b| b.wrapping_add(j))),
                    route: KeyRoute::Chat,
                    variant: j,
                },
                stream: false,
                model: Arc::from("m:latest"),
                keep_alive: false,
                ttl: Duration::from_secs(60),
                read: true,
                max_age: None,
                coalesce: true,
                native: Some(Native::Chat),
            };
            cache
                .insert(
                    &lookup,
                    http::HeaderValue::from_static("application/json"),
                    vec![Bytes::from(vec![b'x'; 1000])],
                )
                .await;
        }
    }
    let stats = cache.stats().await;
    assert!(
        stats.bytes <= budget + budget / 20,
        "{} > {}",
        stats.bytes,
        budget
    );
    assert!(
        stats.entries > 100,
        "it still holds plenty: {}",
        stats.entries
    );
}
