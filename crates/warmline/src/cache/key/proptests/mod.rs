//! Property tests: respelling a body never changes its key, changing an
//! output-affecting field always does, excluded fields never do, partitions and
//! digests never share, and no corrupted body panics.

use proptest::prelude::*;

use super::tests::{canon, digests};
use super::{KeyRoute, canonical};
use KeyRoute::*;
use body::Style;
use cases::{arb_chat, arb_gen};

mod body;
mod cases;
mod parts;

const ROUTES: [KeyRoute; 8] = [
    Generate,
    Chat,
    Embed,
    Embeddings,
    Show,
    OpenAiChat,
    OpenAiCompletions,
    OpenAiEmbeddings,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn byte_identical_bodies_give_identical_keys(c in arb_chat(), seed in any::<u64>()) {
        let body = c.body(&mut Style::wild(seed));
        for route in ROUTES {
            let a = canonical(route, body.as_bytes(), "p", digests);
            let b = canonical(route, body.clone().as_bytes(), "p", digests);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn respelling_a_generate_request_keeps_its_key(c in arb_gen(), seed in any::<u64>()) {
        let plain = c.body(&mut Style::plain());
        let wild = c.body(&mut Style::wild(seed));
        let (a, b) = (canon(Generate, &plain), canon(Generate, &wild));
        prop_assert_eq!(a.key, b.key, "\n{}\n{}\n{}\n{}", plain, wild, a.canonical, b.canonical);
    }

    #[test]
    fn respelling_a_chat_request_keeps_its_key(c in arb_chat(), seed in any::<u64>()) {
        let plain = c.body(&mut Style::plain());
        let wild = c.body(&mut Style::wild(seed));
        let (a, b) = (canon(Chat, &plain), canon(Chat, &wild));
        prop_assert_eq!(a.key, b.key, "\n{}\n{}\n{}\n{}", plain, wild, a.canonical, b.canonical);
    }

    #[test]
    fn changing_an_output_affecting_generate_field_changes_the_key(
        c in arb_gen(), which in 0usize..15, aux in 0usize..64, seed in any::<u64>(),
    ) {
        let mut m = c.clone();
        m.mutate(which, aux);
        let (a, b) = (canon(Generate, &c.body(&mut Style::wild(seed))), canon(Generate, &m.body(&mut Style::wild(!seed))));
        prop_assert_ne!(a.key, b.key, "mutation {}\n{}\n{}", which, a.canonical, b.canonical);
    }

    #[test]
    fn changing_an_output_affecting_chat_field_changes_the_key(
        c in arb_chat(), which in 0usize..16, aux in 0usize..64, seed in any::<u64>(),
    ) {
        let mut m = c.clone();
        m.mutate(which, aux);
        let (a, b) = (canon(Chat, &c.body(&mut Style::wild(seed))), canon(Chat, &m.body(&mut Style::wild(!seed))));
        prop_assert_ne!(a.key, b.key, "mutation {}\n{}\n{}", which, a.canonical, b.canonical);
    }

    #[test]
    fn changing_an_excluded_field_keeps_the_key(
        g in arb_gen(), c in arb_chat(), which in 0usize..4, seed in any::<u64>(),
    ) {
        let (mut g2, mut c2) = (g.clone(), c.clone());
        g2.excluded.perturb(which);
        c2.excluded.perturb(which);
        prop_assert_eq!(canon(Generate, &g.body(&mut Style::wild(seed))).key, canon(Generate, &g2.body(&mut Style::wild(seed))).key);
        prop_assert_eq!(canon(Chat, &c.body(&mut Style::wild(seed))).key, canon(Chat, &c2.body(&mut Style::wild(seed))).key);
    }

    #[test]
    fn different_partitions_never_share_keys(c in arb_chat(), p1 in ".{0,12}", p2 in ".{0,12}") {
        prop_assume!(p1 != p2);
        let body = c.body(&mut Style::plain());
        let k = |p: &str| canonical(Chat, body.as_bytes(), p, digests).ok().flatten().map(|c| c.key);
        prop_assert_ne!(k(&p1), k(&p2));
    }

    #[test]
    fn different_digests_never_share_keys(g in arb_gen(), d1 in "[0-9a-f:]{0,64}", d2 in "[0-9a-f:]{0,64}") {
        prop_assume!(d1 != d2);
        let body = g.body(&mut Style::plain());
        let k = |d: &str| canonical(Generate, body.as_bytes(), "", |_| Some(d.to_owned())).ok().flatten().map(|c| c.key);
        prop_assert_ne!(k(&d1), k(&d2));
    }

    #[test]
    fn corrupted_bodies_never_panic(c in arb_chat(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut body = c.body(&mut Style::wild(7)).into_bytes();
        let i = at.index(body.len());
        body[i] = byte;
        let truncated = &body[..cut.index(body.len() + 1).min(body.len())];
        for route in ROUTES {
            let _ = canonical(route, &body, "", digests);
            let _ = canonical(route, truncated, "", digests);
        }
    }
}
