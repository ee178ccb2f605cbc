//! Request bodies as trees that know which rewrites keep their meaning, and the
//! plain and wild styles that spell them out.

/// A request body as a tree that knows which rewrites keep its meaning.
#[derive(Clone, Debug)]
pub(super) enum T {
    Null,
    Bool(bool),
    /// Go `int` field: spelled exactly.
    Int(i64),
    /// An `options` number: any spelling of the same value.
    Loose(f64),
    /// A float inside a schema: any float spelling.
    Float(f64),
    /// A string: may be spelled with `\u` escapes.
    Str(String),
    /// Compared raw by Ollama (`"json"` in format): never re-escaped.
    Raw(&'static str),
    Arr(Vec<T>),
    /// Go struct: members may be reordered and re-cased.
    Struct(Vec<(&'static str, T)>),
    /// Go map: members may be reordered.
    Map(Vec<(String, T)>),
    /// Order is meaningful (schemas, tools, tool-call arguments).
    Fixed(Vec<(String, T)>),
}

/// How to spell a tree: the plain style is canonical-ish, the wild one reorders,
/// re-cases, re-escapes, re-spells numbers, adds whitespace and explicit defaults.
pub(super) struct Style {
    state: u64,
    pub(super) wild: bool,
}

impl Style {
    pub(super) fn plain() -> Style {
        Style {
            state: 1,
            wild: false,
        }
    }

    pub(super) fn wild(seed: u64) -> Style {
        Style {
            state: seed | 1,
            wild: true,
        }
    }

    pub(super) fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn coin(&mut self) -> bool {
        self.wild && self.next().is_multiple_of(2)
    }

    pub(super) fn pick<'a>(&mut self, forms: &'a [String]) -> &'a str {
        if self.wild {
            &forms[(self.next() % forms.len() as u64) as usize]
        } else {
            &forms[0]
        }
    }

    fn ws(&mut self, out: &mut String) {
        if self.wild {
            match self.next() % 8 {
                0 => out.push(' '),
                1 => out.push_str("\n  "),
                2 => out.push('\t'),
                3 => out.push_str("\r\n"),
                _ => {}
            }
        }
    }
}

pub(super) fn render(t: &T, st: &mut Style) -> String {
    let mut out = String::new();
    put(t, st, &mut out);
    st.ws(&mut out);
    out
}

fn put(t: &T, st: &mut Style, out: &mut String) {
    st.ws(out);
    match t {
        T::Null => out.push_str("null"),
        T::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        T::Int(i) => out.push_str(&i.to_string()),
        T::Loose(f) => {
            let mut forms = vec![format!("{f:?}"), format!("{f:e}"), format!("{f:E}")];
            if f.fract() == 0.0 && f.abs() < 1e15 {
                let i = *f as i64;
                forms.extend([
                    i.to_string(),
                    format!("{i}.0"),
                    format!("{i}e0"),
                    format!("{i}.000e+0"),
                ]);
                if i != 0 {
                    forms.push(format!("{i}0e-1"));
                }
            }
            if *f == 0.0 {
                forms.extend(["-0.0".to_owned(), "0e7".to_owned(), "-0".to_owned()]);
            }
            out.push_str(st.pick(&forms));
        }
        T::Float(f) => {
            let forms = [format!("{f:?}"), format!("{f:e}"), format!("{f:?}0")];
            out.push_str(st.pick(&forms));
        }
        T::Str(s) => put_str(s, st, out),
        T::Raw(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        T::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                put(item, st, out);
                st.ws(out);
            }
            out.push(']');
        }
        T::Struct(m) => {
            let m: Vec<(String, &T)> = m
                .iter()
                .map(|(k, v)| {
                    let k = if st.coin() {
                        k.chars()
                            .map(|c| if st.coin() { c.to_ascii_uppercase() } else { c })
                            .collect()
                    } else {
                        (*k).to_owned()
                    };
                    (k, v)
                })
                .collect();
            put_members(m, true, st, out);
        }
        T::Map(m) => put_members(
            m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            true,
            st,
            out,
        ),
        T::Fixed(m) => put_members(
            m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            false,
            st,
            out,
        ),
    }
}

fn put_members(mut m: Vec<(String, &T)>, reorder: bool, st: &mut Style, out: &mut String) {
    if reorder && st.wild {
        for i in (1..m.len()).rev() {
            let j = (st.next() % (i as u64 + 1)) as usize;
            m.swap(i, j);
        }
    }
    out.push('{');
    for (n, (k, v)) in m.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        st.ws(out);
        put_str(k, st, out);
        st.ws(out);
        out.push(':');
        put(v, st, out);
        st.ws(out);
    }
    out.push('}');
}

fn put_str(s: &str, st: &mut Style, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if st.coin() && st.coin() {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04X}"));
            }
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '/' if st.coin() => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out.push('"');
}
