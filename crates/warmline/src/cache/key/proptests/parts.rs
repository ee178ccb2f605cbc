//! The parts a generated request is built from (model spellings, options,
//! `format`, `think`, excluded fields, images), each with its strategy and a
//! mutation that changes the key.

use proptest::prelude::*;

use super::body::{Style, T};

pub(super) const MODELS: [[&str; 4]; 3] = [
    [
        "llama3.2",
        "llama3.2:latest",
        "library/llama3.2",
        "LLAMA3.2",
    ],
    [
        "qwen3:8b",
        "QWEN3:8B",
        "registry.ollama.ai/library/qwen3:8b",
        "library/qwen3:8B",
    ],
    [
        "myns/coder",
        "myns/coder:latest",
        "MyNs/Coder",
        "registry.ollama.ai/myns/coder",
    ],
];

pub(super) fn model_t(model: usize, st: &mut Style) -> T {
    let forms: Vec<String> = MODELS[model].iter().map(|s| (*s).to_owned()).collect();
    T::Str(st.pick(&forms).to_owned())
}

const INT_OPTS: [&str; 6] = [
    "seed",
    "top_k",
    "num_predict",
    "num_keep",
    "repeat_last_n",
    "num_ctx",
];
pub(super) const OPT_KEYS: [&str; 13] = [
    "temperature",
    "top_p",
    "min_p",
    "typical_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "seed",
    "top_k",
    "num_predict",
    "num_keep",
    "repeat_last_n",
    "num_ctx",
];

fn opt_value(key: &str, r: u32) -> f64 {
    if INT_OPTS.contains(&key) {
        f64::from(r) - 100.0
    } else if key == "repeat_penalty" {
        0.5 + f64::from(r % 16) / 8.0 // never zero: its -0 is not 0
    } else {
        f64::from(r % 20) / 10.0
    }
}

#[derive(Clone, Debug, Default)]
pub(super) struct Opts {
    values: Vec<(&'static str, f64)>,
    stop: Option<Vec<String>>,
}

impl Opts {
    pub(super) fn t(&self, st: &mut Style, num_thread: Option<i64>) -> Option<T> {
        let mut m: Vec<(String, T)> = self
            .values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), T::Loose(*v)))
            .collect();
        if let Some(stop) = &self.stop {
            m.push((
                "stop".into(),
                T::Arr(stop.iter().map(|s| T::Str(s.clone())).collect()),
            ));
        }
        if let Some(n) = num_thread {
            m.push(("num_thread".into(), T::Loose(n as f64))); // not keyed
        }
        if m.is_empty() && !st.coin() {
            None
        } else {
            Some(T::Map(m))
        }
    }

    /// Changes one output-affecting option.
    pub(super) fn mutate(&mut self, pick: usize) {
        if pick % (OPT_KEYS.len() + 1) == OPT_KEYS.len() {
            match &mut self.stop {
                None => self.stop = Some(vec!["#".into()]),
                Some(s) => s.push("##".into()),
            }
            return;
        }
        let key = OPT_KEYS[pick % OPT_KEYS.len()];
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v += if INT_OPTS.contains(&key) { 1.0 } else { 0.25 },
            None => self.values.push((key, opt_value(key, 7))),
        }
    }
}

pub(super) fn arb_text() -> impl Strategy<Value = String> {
    let chars = vec![
        'a',
        'b',
        'Z',
        ' ',
        '\n',
        '"',
        '\\',
        '/',
        '\u{e9}',
        '\u{1F600}',
        '\u{1}',
        '\u{7f}',
        '<',
        '\u{2028}',
    ];
    prop::collection::vec(prop::sample::select(chars), 0..10).prop_map(String::from_iter)
}

pub(super) fn arb_opts() -> impl Strategy<Value = Opts> {
    (
        prop::sample::subsequence(OPT_KEYS.to_vec(), 0..=5),
        prop::collection::vec(0u32..1000, 5),
        prop::option::of(prop::collection::vec(arb_text(), 0..3)),
    )
        .prop_map(|(keys, raw, stop)| Opts {
            values: keys
                .into_iter()
                .zip(raw)
                .map(|(k, r)| (k, opt_value(k, r)))
                .collect(),
            stop,
        })
}

#[derive(Clone, Debug)]
pub(super) enum FormatCase {
    Unset,
    Json,
    Schema(Vec<(String, &'static str, f64)>),
}

impl FormatCase {
    pub(super) fn t(&self, st: &mut Style) -> Option<T> {
        match self {
            FormatCase::Unset => match st.next() % 4 {
                _ if !st.wild => None,
                0 => Some(T::Null),
                1 => Some(T::Raw("")),
                _ => None,
            },
            FormatCase::Json => Some(T::Raw("json")),
            FormatCase::Schema(props) => Some(T::Fixed(vec![
                ("type".into(), T::Str("object".into())),
                (
                    "properties".into(),
                    T::Fixed(
                        props
                            .iter()
                            .map(|(name, ty, max)| {
                                (
                                    name.clone(),
                                    T::Fixed(vec![
                                        ("type".into(), T::Str((*ty).into())),
                                        ("maximum".into(), T::Float(*max)),
                                    ]),
                                )
                            })
                            .collect(),
                    ),
                ),
            ])),
        }
    }

    pub(super) fn mutate(&mut self) {
        *self = match std::mem::replace(self, FormatCase::Unset) {
            FormatCase::Unset => FormatCase::Json,
            FormatCase::Json => FormatCase::Schema(vec![("a".into(), "string", 1.5)]),
            FormatCase::Schema(mut props) => {
                if props.len() >= 2 && props[0].0 != props[1].0 {
                    props.swap(0, 1); // property order reaches the grammar
                } else {
                    props.push(("zz".into(), "integer", 2.0));
                }
                FormatCase::Schema(props)
            }
        }
    }
}

pub(super) fn arb_format() -> impl Strategy<Value = FormatCase> {
    prop_oneof![
        Just(FormatCase::Unset),
        Just(FormatCase::Json),
        prop::collection::btree_map(
            "[a-d]{1,2}",
            (prop::sample::select(vec!["string", "integer"]), 0u8..9),
            0..4
        )
        .prop_map(|m| FormatCase::Schema(
            m.into_iter()
                .map(|(k, (t, n))| (k, t, f64::from(n) + 0.5))
                .collect()
        )),
    ]
}

#[derive(Clone, Copy, Debug)]
pub(super) enum ThinkCase {
    Unset,
    Bool(bool),
    Level(&'static str),
}

impl ThinkCase {
    pub(super) fn t(self, st: &mut Style) -> Option<T> {
        match self {
            ThinkCase::Unset => st.coin().then_some(T::Null),
            ThinkCase::Bool(b) => Some(T::Bool(b)),
            ThinkCase::Level(l) => Some(T::Str(l.into())),
        }
    }

    pub(super) fn next(self) -> ThinkCase {
        match self {
            ThinkCase::Unset => ThinkCase::Bool(false),
            ThinkCase::Bool(false) => ThinkCase::Bool(true),
            ThinkCase::Bool(true) => ThinkCase::Level("high"),
            ThinkCase::Level("high") => ThinkCase::Level("low"),
            ThinkCase::Level(_) => ThinkCase::Unset,
        }
    }
}

pub(super) fn arb_think() -> impl Strategy<Value = ThinkCase> {
    prop_oneof![
        Just(ThinkCase::Unset),
        any::<bool>().prop_map(ThinkCase::Bool),
        prop::sample::select(vec!["low", "medium", "high"]).prop_map(ThinkCase::Level),
    ]
}

/// Fields every case carries that must NOT change the key.
#[derive(Clone, Debug, Default)]
pub(super) struct Excluded {
    stream: Option<bool>,
    keep_alive: Option<i64>,
    unknown: Option<i64>,
    /// Rendered inside `options`.
    pub(super) num_thread: Option<i64>,
}

impl Excluded {
    pub(super) fn push(&self, m: &mut Vec<(&'static str, T)>) {
        if let Some(s) = self.stream {
            m.push(("stream", T::Bool(s)));
        }
        if let Some(k) = self.keep_alive {
            m.push(("keep_alive", T::Int(k)));
        }
        if let Some(u) = self.unknown {
            m.push(("zz_unknown_field", T::Int(u)));
        }
    }

    pub(super) fn perturb(&mut self, which: usize) {
        match which % 4 {
            0 => self.stream = Some(!self.stream.unwrap_or(true)),
            1 => self.keep_alive = Some(self.keep_alive.map_or(-1, |k| k + 60)),
            2 => self.num_thread = Some(self.num_thread.map_or(1, |n| n + 1)),
            _ => self.unknown = Some(self.unknown.map_or(0, |u| u + 1)),
        }
    }
}

pub(super) fn arb_excluded() -> impl Strategy<Value = Excluded> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(-1i64..600),
        prop::option::of(0i64..3),
        prop::option::of(0i64..16),
    )
        .prop_map(|(stream, keep_alive, unknown, num_thread)| Excluded {
            stream,
            keep_alive,
            unknown,
            num_thread,
        })
}

/// Pushes `name: value`, or leaves it out when it is the default (the wild style
/// sometimes spells the default out).
pub(super) fn field(
    m: &mut Vec<(&'static str, T)>,
    st: &mut Style,
    name: &'static str,
    value: T,
    is_default: bool,
) {
    if !is_default || st.coin() {
        m.push((name, value));
    }
}

pub(super) fn arb_images() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[A-Za-z0-9+/]{4}(==)?", 0..3)
}

pub(super) fn mutate_images(images: &mut Vec<String>) {
    if images.len() >= 2 && images[0] != images[1] {
        images.swap(0, 1);
    } else {
        images.push("QUJD".into());
    }
}
