//! The matching benchmark: `cargo bench --bench matching`.
//!
//! Replays seeded, reproducible workloads (see `matching/workload.rs`) on
//! peerbook's book and, in the same process, on two published Rust books
//! (matchcore 0.4.0 and rust_ob 2.5.3), pinned to one CPU, and prints one line
//! per engine and workload:
//!
//! ```text
//! matching <engine> <workload> ops_per_sec=<n> p50_ns=<n> p99_ns=<n>
//! ```
//!
//! Throughput is the median of several untimed-prefill, timed-replay runs on
//! fresh engines (`Instant` around the whole replay). Latency comes from a
//! separate replay timing every operation with the cycle counter (`lfence;
//! rdtsc`, overhead subtracted, calibrated against `Instant`); elsewhere it
//! falls back to batches of 64 operations. Every engine's trade count must
//! equal the generator's, and peerbook's final digest must equal it too; the
//! `check` lines say so, and the run aborts otherwise.
//!
//! Environment: `PEERBOOK_BENCH_SCALE` (default 1; 0.01 runs in seconds),
//! `PEERBOOK_BENCH_RUNS` (default 3), `PEERBOOK_BENCH_WORKLOADS` and
//! `PEERBOOK_BENCH_ENGINES` (comma-separated filters), `PEERBOOK_BENCH_CPU`
//! (CPU to pin to; default the current one), `PEERBOOK_BENCH_SEED`.

#[path = "matching/engines.rs"]
mod engines;
#[path = "matching/rng.rs"]
mod rng;
#[path = "matching/workload.rs"]
mod workload;

use std::hint::black_box;
use std::time::{Duration, Instant};

use engines::{Engine, Matchcore, Peerbook, RustOb};
use workload::Workload;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("ignoring {name}={v:?}: not a valid value");
            default
        }),
        Err(_) => default,
    }
}

fn selected(var: &str, name: &str) -> bool {
    match std::env::var(var) {
        Ok(list) => list.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

/// Pins this thread to one CPU so the caches and the cycle counter stay put.
fn pin_to_one_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain libc calls on a zeroed cpu_set_t owned by this frame.
        unsafe {
            let cpu = env("PEERBOOK_BENCH_CPU", libc::sched_getcpu().max(0) as usize);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                return Some(cpu);
            }
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    None
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Per-operation timer: the cycle counter where there is one.
struct Clock {
    /// Nanoseconds per tick.
    ns_per_tick: f64,
    /// Ticks an empty measurement costs.
    overhead: u64,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    // SAFETY: lfence and rdtsc have no preconditions on x86_64.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_lfence();
        let t = std::arch::x86_64::_rdtsc();
        std::arch::x86_64::_mm_lfence();
        t
    }
}

impl Clock {
    #[cfg(target_arch = "x86_64")]
    fn calibrate() -> Clock {
        let (t0, c0) = (Instant::now(), ticks());
        while t0.elapsed() < Duration::from_millis(200) {}
        let (ns, c1) = (t0.elapsed().as_nanos() as f64, ticks());
        let ns_per_tick = ns / (c1 - c0) as f64;
        let mut empty: Vec<u64> = (0..100_000)
            .map(|_| {
                let a = ticks();
                let b = ticks();
                b - a
            })
            .collect();
        empty.sort_unstable();
        Clock {
            ns_per_tick,
            overhead: empty[empty.len() / 2],
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn calibrate() -> Clock {
        Clock {
            ns_per_tick: 1.0,
            overhead: 0,
        }
    }

    fn describe(&self) -> String {
        if cfg!(target_arch = "x86_64") {
            format!(
                "rdtsc {:.3} GHz, {} ticks overhead subtracted",
                1.0 / self.ns_per_tick,
                self.overhead
            )
        } else {
            "Instant around batches of 64 operations".into()
        }
    }
}

/// What one engine did on one workload.
#[derive(Clone, Copy, Debug)]
struct Measured {
    ops_per_sec: f64,
    p50_ns: f64,
    p99_ns: f64,
    trades: u64,
}

fn replay<E: Engine>(w: &Workload) -> (E, Duration, u64) {
    let mut e = E::new(w.ids);
    for m in &w.prefill {
        e.apply(m);
    }
    let start = Instant::now();
    let mut trades = 0u64;
    for m in &w.msgs {
        trades += u64::from(e.apply(black_box(m)));
    }
    let elapsed = start.elapsed();
    (e, elapsed, trades)
}

/// Latency of every operation (x86_64) or of batches of 64 (elsewhere), in
/// nanoseconds per operation.
fn latencies<E: Engine>(w: &Workload, clock: &Clock) -> Vec<f64> {
    let mut e = E::new(w.ids);
    for m in &w.prefill {
        e.apply(m);
    }
    let mut out = Vec::with_capacity(w.msgs.len());
    #[cfg(target_arch = "x86_64")]
    {
        let mut raw: Vec<u64> = Vec::with_capacity(w.msgs.len());
        for m in &w.msgs {
            let a = ticks();
            black_box(e.apply(black_box(m)));
            let b = ticks();
            raw.push((b - a).saturating_sub(clock.overhead));
        }
        out.extend(raw.iter().map(|&t| t as f64 * clock.ns_per_tick));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = clock;
        for chunk in w.msgs.chunks(64) {
            let t = Instant::now();
            for m in chunk {
                black_box(e.apply(black_box(m)));
            }
            let per = t.elapsed().as_nanos() as f64 / chunk.len() as f64;
            out.extend(std::iter::repeat_n(per, chunk.len()));
        }
    }
    drop(e);
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

trait Digest {
    fn final_digest(&self) -> Option<[u8; 32]> {
        None
    }
}
impl Digest for Peerbook {
    fn final_digest(&self) -> Option<[u8; 32]> {
        Some(self.book.digest())
    }
}
impl Digest for Matchcore {}
impl Digest for RustOb {}

/// One timed replay; checks peerbook's final state. Returns ops/s and trades.
fn timed_run<E: Engine + Digest>(w: &Workload) -> (f64, u64) {
    let (e, elapsed, trades) = replay::<E>(w);
    if let Some(d) = e.final_digest() {
        assert_eq!(
            d,
            w.digest,
            "{}: {} ended in another state than the generator",
            w.name,
            E::NAME
        );
    }
    drop(e);
    (w.msgs.len() as f64 / elapsed.as_secs_f64(), trades)
}

/// The engines, by name, as functions over a workload.
struct Runner {
    name: &'static str,
    timed: fn(&Workload) -> (f64, u64),
    latencies: fn(&Workload, &Clock) -> Vec<f64>,
}

fn runner<E: Engine + Digest>() -> Runner {
    Runner {
        name: E::NAME,
        timed: timed_run::<E>,
        latencies: latencies::<E>,
    }
}

/// Measures every engine on a workload. Timed runs are interleaved (engine A,
/// B, C, then again), so a burst of load from elsewhere on the machine hits
/// every engine alike; the median run counts.
fn measure(w: &Workload, engines: &[Runner], runs: usize, clock: &Clock) -> Vec<Measured> {
    let mut rates = vec![Vec::with_capacity(runs); engines.len()];
    let mut trades = vec![0u64; engines.len()];
    for _ in 0..runs.max(1) {
        for (i, r) in engines.iter().enumerate() {
            let (rate, t) = (r.timed)(w);
            rates[i].push(rate);
            trades[i] = t;
        }
    }
    engines
        .iter()
        .enumerate()
        .map(|(i, r)| {
            rates[i].sort_by(f64::total_cmp);
            let mut lat = (r.latencies)(w, clock);
            lat.sort_unstable_by(f64::total_cmp);
            let m = Measured {
                ops_per_sec: rates[i][rates[i].len() / 2],
                p50_ns: percentile(&lat, 0.50),
                p99_ns: percentile(&lat, 0.99),
                trades: trades[i],
            };
            print_line(r.name, w.name, &m);
            m
        })
        .collect()
}

fn print_line(engine: &str, workload: &str, m: &Measured) {
    println!(
        "matching {engine} {workload} ops_per_sec={:.0} p50_ns={:.0} p99_ns={:.0}",
        m.ops_per_sec, m.p50_ns, m.p99_ns
    );
}

fn main() {
    let scale: f64 = env("PEERBOOK_BENCH_SCALE", 1.0);
    let runs: usize = env("PEERBOOK_BENCH_RUNS", 3);
    let seed: u64 = env("PEERBOOK_BENCH_SEED", 23);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = pin_to_one_cpu();
    let clock = Clock::calibrate();
    println!(
        "# machine: {} CPUs ({}), pinned to {}; {}; scale {scale}, {runs} runs, seed {seed}",
        cpus,
        cpu_model(),
        cpu.map_or("no CPU".to_string(), |c| format!("CPU {c}")),
        clock.describe(),
    );

    type Gen = Box<dyn Fn() -> Workload>;
    let mut gens: Vec<(&str, Gen)> = vec![(
        "exchange-core-mix",
        Box::new(move || workload::exchange_core_mix(scale, seed)),
    )];
    for s in workload::SCENARIOS {
        gens.push((s.name, Box::new(move || workload::flash(s, scale, seed))));
    }

    let engines: Vec<Runner> = [
        runner::<Peerbook>(),
        runner::<Matchcore>(),
        runner::<RustOb>(),
    ]
    .into_iter()
    .filter(|r| selected("PEERBOOK_BENCH_ENGINES", r.name))
    .collect();

    // (engine, workload, result) of the flash1-like scenarios.
    let mut flash: Vec<(&'static str, &'static str, Measured)> = Vec::new();
    let mut failed = false;
    for (name, gen) in &gens {
        if !selected("PEERBOOK_BENCH_WORKLOADS", name) {
            continue;
        }
        let w = gen();
        println!("# {}", w.stats);
        let results = measure(&w, &engines, runs, &clock);
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for (r, m) in engines.iter().zip(results) {
            counts.push((r.name, m.trades));
            if *name != "exchange-core-mix" {
                flash.push((r.name, w.name, m));
            }
        }
        let agree = counts.iter().all(|&(_, t)| t == w.trades);
        let list: Vec<String> = counts.iter().map(|(e, t)| format!("{e}={t}")).collect();
        println!(
            "# check {} trades expected={} {}: {}",
            w.name,
            w.trades,
            list.join(" "),
            if agree { "ok" } else { "MISMATCH" }
        );
        failed |= !agree;
    }

    // Worst flash1-like scenario per engine, the way flash1 ranks engines.
    for engine in [Peerbook::NAME, Matchcore::NAME, RustOb::NAME] {
        let worst = flash
            .iter()
            .filter(|(e, _, _)| *e == engine)
            .min_by(|a, b| a.2.ops_per_sec.total_cmp(&b.2.ops_per_sec));
        if let Some((_, workload, m)) = worst {
            print_line(engine, &format!("worst-case:{workload}"), m);
        }
    }
    if failed {
        eprintln!("trade counts differ between engines: the comparison is not valid");
        std::process::exit(1);
    }
}
