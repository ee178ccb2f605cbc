//! Whole generate and chat requests: strategies, their bodies in a given style,
//! and the mutations that must change their key.

use proptest::prelude::*;

use super::body::{Style, T, render};
use super::parts::{
    Excluded, FormatCase, MODELS, OPT_KEYS, Opts, ThinkCase, arb_excluded, arb_format, arb_images,
    arb_opts, arb_text, arb_think, field, model_t, mutate_images,
};

#[derive(Clone, Debug)]
pub(super) struct GenCase {
    model: usize,
    prompt: String,
    suffix: String,
    system: String,
    raw: bool,
    format: FormatCase,
    images: Vec<String>,
    context: Option<Vec<i64>>,
    think: ThinkCase,
    options: Opts,
    truncate: Option<bool>,
    shift: Option<bool>,
    logprobs: bool,
    top_logprobs: i64,
    pub(super) excluded: Excluded,
}

pub(super) fn arb_gen() -> impl Strategy<Value = GenCase> {
    (
        (0usize..3, arb_text(), arb_text(), arb_text(), any::<bool>()),
        (
            arb_format(),
            arb_images(),
            prop::option::of(prop::collection::vec(-5i64..50_000, 0..4)),
            arb_think(),
        ),
        (
            arb_opts(),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            any::<bool>(),
            0i64..21,
        ),
        arb_excluded(),
    )
        .prop_map(
            |(
                (model, prompt, suffix, system, raw),
                (format, images, context, think),
                (options, truncate, shift, logprobs, top_logprobs),
                excluded,
            )| GenCase {
                model,
                prompt,
                suffix,
                system,
                raw,
                format,
                images,
                context,
                think,
                options,
                truncate,
                shift,
                logprobs,
                top_logprobs,
                excluded,
            },
        )
}

impl GenCase {
    pub(super) fn body(&self, st: &mut Style) -> String {
        let mut m = vec![("model", model_t(self.model, st))];
        field(
            &mut m,
            st,
            "prompt",
            T::Str(self.prompt.clone()),
            self.prompt.is_empty(),
        );
        field(
            &mut m,
            st,
            "suffix",
            T::Str(self.suffix.clone()),
            self.suffix.is_empty(),
        );
        field(
            &mut m,
            st,
            "system",
            T::Str(self.system.clone()),
            self.system.is_empty(),
        );
        field(&mut m, st, "raw", T::Bool(self.raw), !self.raw);
        if let Some(f) = self.format.t(st) {
            m.push(("format", f));
        }
        let images = T::Arr(self.images.iter().map(|i| T::Str(i.clone())).collect());
        field(&mut m, st, "images", images, self.images.is_empty());
        match &self.context {
            Some(c) => m.push(("context", T::Arr(c.iter().map(|i| T::Int(*i)).collect()))),
            None => field(&mut m, st, "context", T::Null, true),
        }
        if let Some(t) = self.think.t(st) {
            m.push(("think", t));
        }
        if let Some(o) = self.options.t(st, self.excluded.num_thread) {
            m.push(("options", o));
        }
        let truncate = self.truncate.unwrap_or(true);
        field(
            &mut m,
            st,
            "truncate",
            T::Bool(truncate),
            self.truncate.is_none(),
        );
        let shift = self.shift.unwrap_or(true);
        field(&mut m, st, "shift", T::Bool(shift), self.shift.is_none());
        field(
            &mut m,
            st,
            "logprobs",
            T::Bool(self.logprobs),
            !self.logprobs,
        );
        field(
            &mut m,
            st,
            "top_logprobs",
            T::Int(self.top_logprobs),
            self.top_logprobs == 0,
        );
        self.excluded.push(&mut m);
        render(&T::Struct(m), st)
    }

    pub(super) fn mutate(&mut self, which: usize, aux: usize) {
        match which % 15 {
            0 => self.prompt.push('!'),
            1 => self.suffix.push('s'),
            2 => self.system.push('y'),
            3 => self.raw = !self.raw,
            4 => self.format.mutate(),
            5 => mutate_images(&mut self.images),
            6 => {
                self.context = match self.context.take() {
                    None => Some(Vec::new()),
                    Some(mut c) => {
                        c.push(7);
                        Some(c)
                    }
                }
            }
            7 => self.think = self.think.next(),
            8 => self.options.mutate(aux),
            9 => self.truncate = Some(!self.truncate.unwrap_or(true)),
            10 => self.shift = Some(!self.shift.unwrap_or(true)),
            11 => self.logprobs = !self.logprobs,
            12 => self.top_logprobs = (self.top_logprobs + 1) % 21,
            13 => self.model = (self.model + 1) % MODELS.len(),
            _ => self.options.mutate(OPT_KEYS.len()),
        }
    }
}

#[derive(Clone, Debug)]
struct CallCase {
    id: String,
    name: String,
    args: Vec<(String, T)>,
}

#[derive(Clone, Debug)]
struct MsgCase {
    role: &'static str,
    content: String,
    thinking: String,
    images: Vec<String>,
    calls: Vec<CallCase>,
}

impl MsgCase {
    fn t(&self, st: &mut Style) -> T {
        let role_forms = [self.role.to_owned(), self.role.to_ascii_uppercase()];
        let mut m = vec![("role", T::Str(st.pick(&role_forms).to_owned()))];
        field(
            &mut m,
            st,
            "content",
            T::Str(self.content.clone()),
            self.content.is_empty(),
        );
        field(
            &mut m,
            st,
            "thinking",
            T::Str(self.thinking.clone()),
            self.thinking.is_empty(),
        );
        let images = T::Arr(self.images.iter().map(|i| T::Str(i.clone())).collect());
        field(&mut m, st, "images", images, self.images.is_empty());
        let calls = T::Arr(
            self.calls
                .iter()
                .map(|c| {
                    let mut function = vec![
                        ("name", T::Str(c.name.clone())),
                        ("arguments", T::Fixed(c.args.clone())),
                    ];
                    field(&mut function, st, "index", T::Int(0), true);
                    T::Struct(vec![
                        ("id", T::Str(c.id.clone())),
                        ("function", T::Struct(function)),
                    ])
                })
                .collect(),
        );
        field(&mut m, st, "tool_calls", calls, self.calls.is_empty());
        field(&mut m, st, "tool_name", T::Str(String::new()), true);
        T::Struct(m)
    }
}

fn arb_args() -> impl Strategy<Value = Vec<(String, T)>> {
    prop::collection::btree_map(
        "[a-e]{1,3}",
        prop_oneof![
            arb_text().prop_map(T::Str),
            (-9i64..99).prop_map(T::Int),
            any::<bool>().prop_map(T::Bool)
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn arb_msg() -> impl Strategy<Value = MsgCase> {
    (
        prop::sample::select(vec!["system", "user", "assistant", "tool"]),
        arb_text(),
        arb_text(),
        arb_images(),
        prop::collection::vec(("[a-z0-9]{0,4}", "[a-z_]{1,6}", arb_args()), 0..2),
    )
        .prop_map(|(role, content, thinking, images, calls)| MsgCase {
            role,
            content,
            thinking,
            images,
            calls: calls
                .into_iter()
                .map(|(id, name, args)| CallCase { id, name, args })
                .collect(),
        })
}

#[derive(Clone, Debug)]
pub(super) struct ChatCase {
    model: usize,
    messages: Vec<MsgCase>,
    tools: Vec<String>,
    format: FormatCase,
    think: ThinkCase,
    options: Opts,
    truncate: Option<bool>,
    logprobs: bool,
    pub(super) excluded: Excluded,
}

pub(super) fn arb_chat() -> impl Strategy<Value = ChatCase> {
    (
        (
            0usize..3,
            prop::collection::vec(arb_msg(), 0..4),
            prop::collection::vec("[a-z]{1,5}", 0..3),
        ),
        (
            arb_format(),
            arb_think(),
            arb_opts(),
            prop::option::of(any::<bool>()),
            any::<bool>(),
        ),
        arb_excluded(),
    )
        .prop_map(
            |((model, messages, tools), (format, think, options, truncate, logprobs), excluded)| {
                ChatCase {
                    model,
                    messages,
                    tools,
                    format,
                    think,
                    options,
                    truncate,
                    logprobs,
                    excluded,
                }
            },
        )
}

fn tool_t(name: &str) -> T {
    T::Fixed(vec![
        ("type".into(), T::Str("function".into())),
        (
            "function".into(),
            T::Fixed(vec![
                ("name".into(), T::Str(name.into())),
                (
                    "parameters".into(),
                    T::Fixed(vec![("type".into(), T::Str("object".into()))]),
                ),
            ]),
        ),
    ])
}

impl ChatCase {
    pub(super) fn body(&self, st: &mut Style) -> String {
        let mut m = vec![("model", model_t(self.model, st))];
        let messages = T::Arr(self.messages.iter().map(|msg| msg.t(st)).collect());
        field(&mut m, st, "messages", messages, self.messages.is_empty());
        let tools = T::Arr(self.tools.iter().map(|t| tool_t(t)).collect());
        field(&mut m, st, "tools", tools, self.tools.is_empty());
        if let Some(f) = self.format.t(st) {
            m.push(("format", f));
        }
        if let Some(t) = self.think.t(st) {
            m.push(("think", t));
        }
        if let Some(o) = self.options.t(st, self.excluded.num_thread) {
            m.push(("options", o));
        }
        let truncate = self.truncate.unwrap_or(true);
        field(
            &mut m,
            st,
            "truncate",
            T::Bool(truncate),
            self.truncate.is_none(),
        );
        field(
            &mut m,
            st,
            "logprobs",
            T::Bool(self.logprobs),
            !self.logprobs,
        );
        self.excluded.push(&mut m);
        render(&T::Struct(m), st)
    }

    pub(super) fn mutate(&mut self, which: usize, aux: usize) {
        const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];
        if self.messages.is_empty() && which % 16 <= 6 {
            self.messages.push(MsgCase {
                role: "user",
                content: "new".into(),
                thinking: String::new(),
                images: Vec::new(),
                calls: Vec::new(),
            });
            return;
        }
        let n = self.messages.len();
        let i = aux % n.max(1);
        match which % 16 {
            0 => self.messages[i].content.push('!'),
            1 => {
                let r = ROLES
                    .iter()
                    .position(|r| *r == self.messages[i].role)
                    .unwrap_or(0);
                self.messages[i].role = ROLES[(r + 1) % ROLES.len()];
            }
            2 => mutate_images(&mut self.messages[i].images),
            3 => self.messages[i].thinking.push('t'),
            4 => {
                let calls = &mut self.messages[i].calls;
                match calls.first_mut() {
                    Some(call) if call.args.len() >= 2 => call.args.swap(0, 1),
                    Some(call) => call.args.push(("zz".into(), T::Int(1))),
                    None => calls.push(CallCase {
                        id: String::new(),
                        name: "f".into(),
                        args: Vec::new(),
                    }),
                }
            }
            5 => {
                if n >= 2 && self.messages[0].content != self.messages[1].content {
                    self.messages.swap(0, 1);
                } else {
                    self.messages.pop();
                }
            }
            6 => self.messages.push(self.messages[i].clone()),
            7 => self.tools.push("extra".into()),
            8 => self.format.mutate(),
            9 => self.think = self.think.next(),
            10 | 11 => self.options.mutate(aux),
            12 => self.truncate = Some(!self.truncate.unwrap_or(true)),
            13 => self.logprobs = !self.logprobs,
            14 => self.model = (self.model + 1) % MODELS.len(),
            _ => self.options.mutate(OPT_KEYS.len()),
        }
    }
}
