//! Which models to keep loaded, within the memory budget.
//!
//! The models the person marked warm come first, whatever they cost; when they
//! alone exceed the budget, the plan says so (the app shows it next to the
//! toggles) rather than letting Ollama evict and reload them in turn. The rest of
//! the budget goes to the models whose cold start is most worth saving: the
//! probability of a use within the horizon ([`super::usage::Outlook`]) times how
//! long a load of that model takes. Loading ahead of a use costs a load that may
//! turn out wasted, so a model that is not loaded needs a likelier use
//! ([`LOAD_AHEAD`]) than one already loaded needs to stay ([`KEEP`], or
//! [`KEEP_WITH_ROOM`] while the budget has room to spare). Models the person
//! cooled are never chosen. A pure function, so it is tested on its own.

/// A model loaded already stays while its use within the (longer) keeping
/// horizon is at least this likely (and it fits)...
pub const KEEP: f32 = 0.1;
/// ...or only this likely, while everything that could stay takes at most half
/// the budget: memory nobody needs costs nothing, and a model used today is
/// let go only when the pattern says it is done.
pub const KEEP_WITH_ROOM: f32 = 0.02;
/// A model not loaded is loaded ahead when its use is at least this likely.
pub const LOAD_AHEAD: f32 = 0.5;
/// The load time assumed for a model never seen loading (seconds).
pub const DEFAULT_LOAD_SECS: f32 = 5.0;

/// One model the plan may keep loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// Marked warm by the person.
    pub chosen: bool,
    /// Cooled by the person: never kept by prediction.
    pub cooled: bool,
    /// Loaded now on some host.
    pub loaded: bool,
    /// Bytes it takes when loaded (an estimate when not seen loaded).
    pub memory: u64,
    /// Probability of a use within the horizon.
    pub p: f32,
    /// Seconds a load takes.
    pub load_secs: f32,
}

/// What to keep loaded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Models kept by prediction, most valuable first.
    pub predicted: Vec<String>,
    /// Memory of the chosen and predicted models together.
    pub used: u64,
    /// The chosen models alone need more than the budget.
    pub chosen_over_budget: bool,
}

/// Chooses within `budget` bytes and `max_models` loaded models at once.
pub fn plan(candidates: &[Candidate], budget: u64, max_models: usize) -> Plan {
    let chosen: Vec<&Candidate> = candidates.iter().filter(|c| c.chosen).collect();
    let mut used: u64 = chosen.iter().map(|c| c.memory).sum();
    let chosen_over_budget = used > budget;
    let mut count = chosen.len();
    let could_stay: u64 = candidates
        .iter()
        .filter(|c| c.chosen || (!c.cooled && c.loaded && c.p >= KEEP_WITH_ROOM))
        .map(|c| c.memory)
        .sum();
    let keep = if could_stay.saturating_mul(2) <= budget {
        KEEP_WITH_ROOM
    } else {
        KEEP
    };
    let mut others: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !c.chosen && !c.cooled)
        .filter(|c| c.p >= if c.loaded { keep } else { LOAD_AHEAD })
        .collect();
    // The cold-start seconds each one saves, expected; ties to the smaller one.
    let value = |c: &Candidate| f64::from(c.p) * f64::from(c.load_secs.max(0.1));
    others.sort_by(|a, b| {
        value(b)
            .total_cmp(&value(a))
            .then(a.memory.cmp(&b.memory))
            .then(a.name.cmp(&b.name))
    });
    let mut predicted = Vec::new();
    for candidate in others {
        if count >= max_models {
            break;
        }
        if used.saturating_add(candidate.memory) <= budget {
            used += candidate.memory;
            count += 1;
            predicted.push(candidate.name.clone());
        }
    }
    Plan {
        predicted,
        used,
        chosen_over_budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn model(name: &str, memory: u64, p: f32, loaded: bool) -> Candidate {
        Candidate {
            name: name.to_owned(),
            chosen: false,
            cooled: false,
            loaded,
            memory,
            p,
            load_secs: 4.0,
        }
    }

    #[test]
    fn the_likeliest_models_fill_the_budget_after_the_chosen_ones() {
        let mut chosen = model("chosen", 4 * GB, 0.0, true);
        chosen.chosen = true;
        let candidates = [
            chosen,
            model("daily", 4 * GB, 0.9, true),
            model("sometimes", 4 * GB, 0.3, true),
            model("big", 9 * GB, 0.95, true),
            model("cold", GB, 0.3, false),
            model("soon", GB, 0.7, false),
        ];
        let plan = plan(&candidates, 12 * GB, 10);
        // big would save the most but does not fit beside the chosen one; daily
        // and soon do, and then sometimes does not; "cold" is not loaded and not
        // likely enough to be loaded ahead.
        assert_eq!(plan.predicted, ["daily", "soon"]);
        assert_eq!(plan.used, 9 * GB);
        assert!(!plan.chosen_over_budget);
        let roomy = super::plan(&candidates, 30 * GB, 10);
        assert_eq!(roomy.predicted, ["big", "daily", "soon", "sometimes"]);
    }

    #[test]
    fn chosen_models_over_the_budget_are_kept_and_reported() {
        let mut a = model("a", 8 * GB, 0.0, true);
        a.chosen = true;
        let mut b = model("b", 8 * GB, 0.0, false);
        b.chosen = true;
        let plan = plan(&[a, b, model("c", GB, 0.9, true)], 10 * GB, 10);
        assert!(plan.chosen_over_budget);
        assert!(plan.predicted.is_empty());
        assert_eq!(plan.used, 16 * GB);
    }

    #[test]
    fn with_room_to_spare_a_model_stays_until_it_is_done() {
        let candidates = [
            model("today", GB, 0.05, true),
            model("tonight", GB, 0.01, true),
        ];
        assert_eq!(plan(&candidates, 100 * GB, 5).predicted, ["today"]);
        // Without room, the same odds are not enough.
        assert!(plan(&candidates, GB * 3 / 2, 5).predicted.is_empty());
    }

    #[test]
    fn cooled_models_and_the_model_cap_are_respected() {
        let mut cooled = model("cooled", GB, 0.99, true);
        cooled.cooled = true;
        let candidates = [cooled, model("x", GB, 0.8, true), model("y", GB, 0.7, true)];
        assert_eq!(plan(&candidates, 100 * GB, 2).predicted, ["x", "y"]);
        assert_eq!(plan(&candidates, 100 * GB, 5).predicted, ["x", "y"]);
        assert!(plan(&[], 0, 5).predicted.is_empty());
        // Five likely models for three places: the three likeliest.
        let five: Vec<Candidate> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, n)| model(n, GB, 0.9 - i as f32 * 0.1, true))
            .collect();
        assert_eq!(plan(&five, 100 * GB, 3).predicted, ["a", "b", "c"]);
    }
}
