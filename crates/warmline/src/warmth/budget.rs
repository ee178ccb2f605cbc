//! The memory budget of warm models: how much the models Warmline keeps loaded
//! (chosen and predicted together) may take.
//!
//! `warmth.budget = "auto"` (the default) is what the machine can spare: the
//! memory available now plus what warm models already hold (they can give it
//! back), less a headroom for everything else (an eighth of the machine, at least
//! 2 GiB), and never more than three quarters of it. Memory is read with sysinfo
//! (the kernel's `MemAvailable` on Linux) on each plan, so the budget shrinks
//! when other programs need more and predicted models are let go first. A size
//! (`"12GiB"`) or a share (`"50%"`) fixes it instead.
//!
//! One budget covers every host, measured on this machine: a model's memory is
//! what its host reports when loaded (`/api/ps` `size`, on GPU or not), so for a
//! host on another machine the budget stands for that machine's too.

use crate::config::Budget;

/// Kept free for everything else, at least.
const MIN_HEADROOM: u64 = 2 << 30;

/// The machine's memory, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    /// Reads it now (zeros where sysinfo cannot).
    pub fn read() -> Memory {
        use sysinfo::{MemoryRefreshKind, System};
        let Ok(mut system) = System::new() else {
            return Memory::default();
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        Memory {
            total: system.total_memory(),
            available: system.available_memory(),
        }
    }
}

/// The budget in bytes, given the machine's `memory` and the bytes the warm
/// models hold now (`held`, part of what is not available).
pub fn bytes(setting: Budget, memory: Memory, held: u64) -> u64 {
    match setting {
        Budget::Bytes(bytes) => bytes,
        Budget::Percent(percent) => (memory.total as f64 * percent / 100.0) as u64,
        Budget::Auto => {
            let headroom = (memory.total / 8).max(MIN_HEADROOM);
            let spare = memory
                .available
                .saturating_add(held)
                .saturating_sub(headroom);
            spare.min(memory.total / 4 * 3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn auto_is_what_can_be_spared_with_headroom() {
        let laptop = Memory {
            total: 16 * GIB,
            available: 9 * GIB,
        };
        // 9 available + 3 held by warm models - 2 headroom.
        assert_eq!(bytes(Budget::Auto, laptop, 3 * GIB), 10 * GIB);
        // Never more than three quarters of the machine.
        let idle = Memory {
            total: 64 * GIB,
            available: 62 * GIB,
        };
        assert_eq!(bytes(Budget::Auto, idle, 0), 48 * GIB);
        // A machine under pressure spares nothing.
        let busy = Memory {
            total: 8 * GIB,
            available: GIB,
        };
        assert_eq!(bytes(Budget::Auto, busy, 0), 0);
        assert_eq!(bytes(Budget::Auto, Memory::default(), 0), 0);
    }

    #[test]
    fn a_size_or_a_share_fixes_it() {
        let machine = Memory {
            total: 32 * GIB,
            available: GIB,
        };
        assert_eq!(bytes(Budget::Bytes(12 * GIB), machine, 0), 12 * GIB);
        assert_eq!(bytes(Budget::Percent(50.0), machine, 0), 16 * GIB);
        assert!(Memory::read().total > 0, "sysinfo reads this machine");
    }
}
