//! CPU and memory of the daemon and the processes it started (its model
//! runners), and of the machine, sampled with sysinfo.
//!
//! CPU percentages need two readings at least 200 ms apart (sysinfo's
//! `MINIMUM_CPU_UPDATE_INTERVAL`), so one [`Sampler`] lives as long as the
//! supervisor and is read on its status tick. Memory is the sum of resident set
//! sizes over the process tree: shared pages are counted once per process, so it
//! somewhat overstates what the tree alone costs.
//!
//! Where it sits: in the supervisor's task, off the request path; the reading
//! ends up in the daemon status (`/warmline/daemon`, the app's Ollama page).
//! Each sample refreshes every process on the machine (that is how the tree is
//! found), which is blocking work. GPU memory is not measured here;
//! it comes from Ollama's `/api/ps` (see `upstream::inventory`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System, ThreadKind};

/// One reading. All zero for the tree (but not the machine) when no daemon
/// process was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// The daemon's process tree; 100 = one full core. Since the previous sample
    /// (0 on the first one, which has nothing to compare with).
    pub cpu_percent: f32,
    /// Resident memory of the tree, bytes.
    pub rss_bytes: u64,
    /// Processes in the tree (the daemon and its runners).
    pub processes: usize,
    /// The machine's memory, bytes.
    pub system_total_bytes: u64,
    /// Memory available for new allocations without swapping (the kernel's
    /// `MemAvailable` on Linux), bytes.
    pub system_available_bytes: u64,
}

/// Keeps sysinfo's state between readings (the previous CPU times).
pub(crate) struct Sampler {
    /// `None` if sysinfo cannot work on this system: every sample is then `None`.
    system: Option<System>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

impl Sampler {
    /// A sampler with nothing read yet.
    pub(crate) fn new() -> Sampler {
        Sampler {
            system: System::new().ok(),
        }
    }

    /// Reads the tree under `root` (a pid), or, without one, the first process
    /// that looks like `ollama serve` (an adopted daemon), and the machine.
    ///
    /// The tree is every descendant by parent pid (threads are skipped).
    /// "First" is in sysinfo's map order, so with several `ollama serve`
    /// processes (other users', other ports) the one measured is arbitrary.
    /// `None` only when sysinfo is unavailable; blocking.
    pub(crate) fn sample(&mut self, root: Option<u32>) -> Option<Resources> {
        let system = self.system.as_mut()?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
        let processes = system.processes();
        let root = match root {
            Some(pid) => Some(Pid::from_u32(pid)),
            None => processes
                .values()
                .find(|p| p.name() == "ollama" && p.cmd().iter().any(|arg| arg == "serve"))
                .map(|p| p.pid()),
        };
        let (mut cpu, mut rss, mut count) = (0f32, 0u64, 0usize);
        if let Some(root) = root.filter(|pid| processes.contains_key(pid)) {
            let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
            for (pid, process) in processes {
                if process.thread_kind() == Some(ThreadKind::Userland) {
                    continue;
                }
                if let Some(parent) = process.parent() {
                    children.entry(parent).or_default().push(*pid);
                }
            }
            let mut seen = HashSet::new();
            let mut stack = vec![root];
            while let Some(pid) = stack.pop() {
                if !seen.insert(pid) {
                    continue;
                }
                if let Some(process) = processes.get(&pid) {
                    cpu += process.cpu_usage();
                    rss += process.memory();
                    count += 1;
                }
                stack.extend(children.get(&pid).into_iter().flatten().copied());
            }
        }
        Some(Resources {
            cpu_percent: cpu,
            rss_bytes: rss,
            processes: count,
            system_total_bytes: system.total_memory(),
            system_available_bytes: system.available_memory(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured() {
        let mut sampler = Sampler::new();
        let me = std::process::id();
        let reading = sampler.sample(Some(me)).expect("sysinfo works on Linux");
        assert!(reading.processes >= 1);
        assert!(reading.rss_bytes > 0);
        assert!(reading.system_total_bytes >= reading.system_available_bytes);
        assert!(reading.system_available_bytes > 0);
    }
}
