//! Mutation testing: does the co-simulation catch real design faults?
//!
//! A [`Mutant`] is a deliberate fault edited into a unit's emitted Verilog (the
//! generators stay fault-free). Each edit names the module and the exact text it
//! changes and fails when that text is not there, so a mutant can never silently
//! become the unmutated design. [`run`] simulates every mutant on Verilator against
//! the unit's standard vector sets ([`VectorSet`]) and reports, per set, whether the
//! set kills the mutant (some check fails or the design hangs) or lets it survive.
//!
//! Faults, for both units: one weight sign flipped, one tap (a nonzero of S) dropped,
//! the narrowing shift off by one, the mask (f') ignored, two lanes' outputs swapped;
//! (bsbu) a lane loading into the bank being computed, and loads running ahead of the
//! compute; (dce) the next pass's mask words loading while the drain reads the mask;
//! and faults only the stream checks see: `out_last` stuck low, an extra word after
//! each pass, and (dce) a `len_err` that never clears.

use std::fmt::Write as _;
use std::path::Path;

use golden::bsbu::{ENTRY_EMPTY_BIT, ENTRY_NEG_BIT};
use rtl::Emitted;
use sim::stream::{run_verilator, Check, RunStats, Stall, StreamVectors};

use crate::unit::{TrafficCheck, Unit};
use crate::TbError;

/// An edit of emitted Verilog; `Err` names the text it could not find.
type Edit = fn(&str) -> Result<String, String>;

/// One deliberate fault.
#[derive(Clone, Copy, Debug)]
pub struct Mutant {
    /// Unit (`bsbu`, `dce`).
    pub unit: &'static str,
    /// Short name.
    pub name: &'static str,
    /// What the fault does.
    pub what: &'static str,
    /// The edit.
    edit: Edit,
}

impl Mutant {
    /// The mutated design.
    pub fn apply(&self, design: &Emitted) -> Result<Emitted, TbError> {
        let verilog = (self.edit)(&design.verilog).map_err(|msg| {
            TbError::Mutation(format!("mutant {}/{}: {msg}", self.unit, self.name))
        })?;
        if verilog == design.verilog {
            return Err(TbError::Mutation(format!(
                "mutant {}/{} left the design unchanged",
                self.unit, self.name
            )));
        }
        Ok(Emitted {
            verilog,
            ..design.clone()
        })
    }
}

/// The text of `module` (from `module NAME(` to `endmodule // NAME`) as a range.
fn module_span(v: &str, module: &str) -> Result<(usize, usize), String> {
    let head = format!("module {module}(");
    let start = v.find(&head).ok_or_else(|| format!("no module {module}"))?;
    let tail = format!("endmodule // {module}\n");
    let end = v[start..]
        .find(&tail)
        .map(|i| start + i + tail.len())
        .ok_or_else(|| format!("module {module} has no end"))?;
    Ok((start, end))
}

/// Replace every occurrence of `find` in `module`; their number must be `count`
/// (None: at least one).
fn replace_in(
    v: &str,
    module: &str,
    find: &str,
    with: &str,
    count: Option<usize>,
) -> Result<String, String> {
    let (a, b) = module_span(v, module)?;
    let n = v[a..b].matches(find).count();
    if count.map_or(n == 0, |c| n != c) {
        let need = count.map_or("at least 1".to_string(), |c| c.to_string());
        return Err(format!(
            "`{find}` occurs {n} times in module {module} (need {need})"
        ));
    }
    Ok(format!(
        "{}{}{}",
        &v[..a],
        v[a..b].replace(find, with),
        &v[b..]
    ))
}

/// Replace exactly one occurrence of `find` in `module`.
fn replace_once(v: &str, module: &str, find: &str, with: &str) -> Result<String, String> {
    replace_in(v, module, find, with, Some(1))
}

/// Swap two texts in `module` (each must occur once).
fn swap_in(v: &str, module: &str, x: &str, y: &str) -> Result<String, String> {
    let mark = "\u{1}SWAP\u{1}";
    let v = replace_once(v, module, x, mark)?;
    let v = replace_once(&v, module, y, x)?;
    replace_once(&v, module, mark, y)
}

/// Flip `bit` of the first entry of lane 1's entry ROM that is not an empty row.
fn flip_entry_bit(v: &str, bit: usize) -> Result<String, String> {
    let module = "top$lanes$1$entries";
    let (a, b) = module_span(v, module)?;
    let body = &v[a..b];
    for line in body.lines() {
        let Some((lhs, rhs)) = line.trim().split_once(" = ") else {
            continue;
        };
        if !lhs.starts_with("mem[") {
            continue;
        }
        // rust-hdl writes a word in binary or, from 16 bits on, in hex.
        let rhs = rhs.trim_end_matches(';');
        let (width, digits, radix) = match (rhs.split_once("'b"), rhs.split_once("'h")) {
            (Some((w, d)), _) => (w, d, 2),
            (None, Some((w, d))) => (w, d, 16),
            (None, None) => continue,
        };
        let word = u64::from_str_radix(digits, radix).map_err(|e| format!("{line}: {e}"))?;
        if word >> ENTRY_EMPTY_BIT & 1 == 1 {
            continue;
        }
        let flipped = word ^ (1 << bit);
        let new = if radix == 2 {
            format!("{lhs} = {width}'b{flipped:b};")
        } else {
            format!("{lhs} = {width}'h{flipped:x};")
        };
        let body = body.replacen(line.trim(), &new, 1);
        return Ok(format!("{}{body}{}", &v[..a], &v[b..]));
    }
    Err(format!("module {module} has no nonzero entry"))
}

/// `out_last` stuck low in the shared output stage (the data is right).
const fn out_last_low(unit: &'static str) -> Mutant {
    Mutant {
        unit,
        name: "out_last-low",
        what: "out_last is stuck low (the data is right)",
        edit: |v| replace_once(v, "top$drain", "out_last = o_last$q;", "out_last = 1'b0;"),
    }
}

/// The shared output stage sends one more word after each pass's last.
const fn extra_word(unit: &'static str) -> Mutant {
    Mutant {
        unit,
        name: "extra-word",
        what: "one more word (out_last low) follows each pass's last word",
        edit: |v| {
            replace_once(
                v,
                "top$drain",
                "out_valid = o_valid$q;",
                "if (done) o_valid$d = 1'b1;\n        out_valid = o_valid$q;",
            )
        },
    }
}

/// The generator-mode backward-weight unit's mutants (P ≥ 2): those of the stored
/// unit that do not edit the entry ROM (it has none), and faults of the generator.
pub const BSBU_GEN_MUTANTS: &[Mutant] = &[
    named(BSBU_MUTANTS, "shift+1"),
    named(BSBU_MUTANTS, "mask-ignored"),
    named(BSBU_MUTANTS, "lane-swap"),
    named(BSBU_MUTANTS, "bank-clash"),
    named(BSBU_MUTANTS, "load-ahead"),
    Mutant {
        unit: "bsbu",
        name: "gen-keep-all",
        what: "lane 1 ignores the sparsity mask: every generated entry is kept",
        edit: |v| replace_once(v, "top$lanes$1", "empty2$d = 1'b1;", "empty2$d = 1'b0;"),
    },
    Mutant {
        unit: "bsbu",
        name: "gen-sign-bit30",
        what: "lane 1 takes the sign from the generator's bit 30 instead of 31",
        edit: |v| replace_once(v, "top$lanes$1", "neg2$d = gx[32'h1f];", "neg2$d = gx[32'h1e];"),
    },
    Mutant {
        unit: "bsbu",
        name: "gen-no-next-row",
        what: "lane 1's generator never moves to its next row: every row repeats the first row's stream",
        edit: |v| {
            replace_once(
                v,
                "top$lanes$1",
                "gnext = 1'b1;",
                "gnext = 1'b0;",
            )
        },
    },
    Mutant {
        unit: "bsbu",
        name: "gen-no-row-base",
        what: "the generators ignore ROW_BASE: a tile past row 0 regenerates rows from 0",
        edit: |v| replace_once(v, "top", "r_base = regs$1$q;", "r_base = 32'h0;"),
    },
    named(BSBU_MUTANTS, "out_last-low"),
    named(BSBU_MUTANTS, "extra-word"),
];

/// The mutant of `list` named `name`, looked up at compile time: a renamed or removed
/// mutant fails the build, where an index would silently pick another one.
const fn named(list: &[Mutant], name: &str) -> Mutant {
    let mut i = 0;
    while i < list.len() {
        let (a, b) = (list[i].name.as_bytes(), name.as_bytes());
        let mut same = a.len() == b.len();
        let mut k = 0;
        while same && k < a.len() {
            same = a[k] == b[k];
            k += 1;
        }
        if same {
            return list[i];
        }
        i += 1;
    }
    panic!("no mutant of that name in the list")
}

/// Number of leading mutants in [`BSBU_GEN_MUTANTS`] that fault the datapath, its
/// buffering or the generator (the rest fault only the stream's framing).
pub const BSBU_GEN_DESIGN_MUTANTS: usize = 9;

/// The backward-weight unit's mutants (P ≥ 2).
pub const BSBU_MUTANTS: &[Mutant] = &[
    Mutant {
        unit: "bsbu",
        name: "sign-flip",
        what: "the sign of lane 1's first nonzero of S is inverted in its entry ROM",
        edit: |v| flip_entry_bit(v, ENTRY_NEG_BIT),
    },
    Mutant {
        unit: "bsbu",
        name: "tap-drop",
        what: "lane 1's first nonzero of S is marked empty, so it adds nothing",
        edit: |v| flip_entry_bit(v, ENTRY_EMPTY_BIT),
    },
    Mutant {
        unit: "bsbu",
        name: "shift+1",
        what: "every lane narrows with the scaling shift plus one",
        edit: |v| {
            let mut v = v.to_string();
            let mut l = 0;
            while module_span(&v, &format!("top$lanes${l}")).is_ok() {
                v = replace_once(
                    &v,
                    &format!("top$lanes${l}"),
                    "narrow$shift = shift;",
                    "narrow$shift = shift + 5'd1;",
                )?;
                l += 1;
            }
            Ok(v)
        },
    },
    Mutant {
        unit: "bsbu",
        name: "mask-ignored",
        what: "the drain multiplies by 1.0 instead of f'",
        edit: |v| {
            replace_once(
                v,
                "top",
                "mf$d = fp$read_data;",
                "mf$d = 16'sh4000;",
            )
        },
    },
    Mutant {
        unit: "bsbu",
        name: "lane-swap",
        what: "the drain takes lane 0's rows from lane 1 and lane 1's from lane 0",
        edit: |v| {
            swap_in(
                v,
                "top",
                "sel_data = lanes$0$res_data;",
                "sel_data = lanes$1$res_data;",
            )
        },
    },
    Mutant {
        unit: "bsbu",
        name: "bank-clash",
        what: "lane 1 loads e_L into the bank its compute pass reads (the overlap's double buffer is lost)",
        edit: |v| {
            replace_once(
                v,
                "top",
                "lanes$1$el_wbank = ld$q[32'h0];",
                "lanes$1$el_wbank = cd$q[32'h0];",
            )
        },
    },
    Mutant {
        unit: "bsbu",
        name: "load-ahead",
        what: "the input is always ready: vector m loads before vector m − 2 is computed",
        edit: |v| {
            replace_once(
                v,
                "top",
                "in_ready = (ld$q - cd$q) < two_vec;",
                "in_ready = 1'b1;",
            )
        },
    },
    out_last_low("bsbu"),
    extra_word("bsbu"),
];

/// Number of leading mutants in [`BSBU_MUTANTS`] that fault the datapath or its
/// buffering (the rest fault only the stream's framing).
pub const BSBU_DESIGN_MUTANTS: usize = 7;

/// Number of leading mutants in [`DCE_MUTANTS`] that fault the datapath or its
/// buffering (the rest fault only the stream's framing or `len_err`).
pub const DCE_DESIGN_MUTANTS: usize = 8;

/// A conv-engine fault that only a long output stall on a tiny map exposes, so it is
/// not in [`DCE_MUTANTS`] (the standard vector sets need not meet that stall): the
/// drained output half is freed at its last word's fetch, before the output stage has
/// taken the word (the engine's behaviour before the soak found it). `dce_checks` runs
/// the soak's shrunk case against it.
pub const DCE_FREE_AT_FETCH: Mutant = Mutant {
    unit: "dce",
    name: "free-at-fetch",
    what: "a drained output half is freed at its last word's fetch, also while the output stage stalls and re-reads that word",
    edit: |v| {
        let v = replace_once(
            v,
            "top",
            "free1$d = 1'b1;",
            "full1$d = 1'b0; busy1$d = 1'b0;",
        )?;
        replace_once(
            &v,
            "top",
            "free0$d = 1'b1;",
            "full0$d = 1'b0; busy0$d = 1'b0;",
        )
    },
};

/// The conv engine's mutants (P ≥ 2).
pub const DCE_MUTANTS: &[Mutant] = &[
    Mutant {
        unit: "dce",
        name: "sign-flip",
        what: "lane 1 reads the sign of its first weight of each output (input 0, tap 0) inverted",
        edit: |v| {
            replace_once(
                v,
                "top",
                "lanes$1$neg = signs2$q[1];",
                "lanes$1$neg = signs2$q[1] ^ first2$q;",
            )
        },
    },
    Mutant {
        unit: "dce",
        name: "tap-drop",
        what: "D1's centre tap (offset 0) is treated as padding and adds nothing",
        edit: |v| {
            replace_once(
                v,
                "top",
                "ty = oy1$q + sdy;",
                "ty = (pass_d1 & (sdy == 16'h0) & (sdx == 16'h0)) ? 16'hffff : oy1$q + sdy;",
            )
        },
    },
    Mutant {
        unit: "dce",
        name: "shift+1",
        what: "every lane narrows D1's sums with SH1 plus one",
        edit: |v| replace_once(v, "top", "lshift$d = r_sh1;", "lshift$d = r_sh1 + 5'd1;"),
    },
    Mutant {
        unit: "dce",
        name: "mask-ignored",
        what: "every output passes the ReLU mask",
        edit: |v| replace_once(v, "top", "mbit = mshift[32'h0];", "mbit = 1'b1;"),
    },
    Mutant {
        unit: "dce",
        name: "lane-swap",
        what: "the drain takes lane 0's channel from lane 1's bank and lane 1's from lane 0's",
        edit: |v| {
            swap_in(
                v,
                "top",
                "sel_data = obuf$0$rdata;",
                "sel_data = obuf$1$rdata;",
            )
        },
    },
    Mutant {
        unit: "dce",
        name: "early-mask",
        what: "the next pass's mask words load during D1 and TAIL too, over the mask the drain still reads",
        edit: |v| {
            replace_once(
                v,
                "top",
                "early = r_has_d2 & pass_d1 & ~lmask$q & ~in_last;",
                "early = r_has_d2 & pass_d1 & ~in_last;",
            )
        },
    },
    Mutant {
        unit: "dce",
        name: "up-column",
        what: "across a pool, D1 reads source column x instead of x >> UP_LOG2 (columns are not up-sampled)",
        edit: |v| replace_once(v, "top", "col = tx >> r_up_log2;", "col = tx;"),
    },
    Mutant {
        unit: "dce",
        name: "gen-no-restart",
        what: "GEN mode: lane 1's generator never restarts its output channel's weights at a pixel (it runs on)",
        edit: |v| replace_once(v, "top", "gens$1$from_row = wz$q;", "gens$1$from_row = 1'b0;"),
    },
    out_last_low("dce"),
    extra_word("dce"),
    Mutant {
        unit: "dce",
        name: "len_err-sticky",
        what: "len_err never clears once raised",
        edit: |v| {
            replace_once(
                v,
                "top",
                "len_err_r$d = ~(in_last & in_final);",
                "len_err_r$d = len_err_r$q | ~(in_last & in_final);",
            )
        },
    },
];

/// A named stimulus for one design.
#[derive(Clone, Debug)]
pub struct VectorSet {
    /// Name (`corners`, `random`, `captured`, `len_err`).
    pub name: String,
    /// The stimulus.
    pub vectors: StreamVectors,
}

/// What one vector set did to one mutant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Checks failed: how many, and the first failed check.
    Killed(usize, Check),
    /// The design stopped making progress.
    Hung,
    /// Every check passed.
    Survived,
}

impl Outcome {
    /// Whether the set caught the fault.
    pub fn killed(&self) -> bool {
        !matches!(self, Outcome::Survived)
    }
}

/// One mutant's outcomes, per set in order.
#[derive(Clone, Debug)]
pub struct MutantReport {
    /// The mutant.
    pub mutant: Mutant,
    /// (set name, outcome).
    pub outcomes: Vec<(String, Outcome)>,
}

impl MutantReport {
    /// Killed by at least one set.
    pub fn killed(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| o.killed())
    }
}

/// Run `sets` on `design` (each must pass every check) and then on every mutant, on
/// Verilator with the standard stall pattern.
pub fn run(
    design: &Emitted,
    mutants: &[Mutant],
    sets: &[VectorSet],
    cache: &Path,
    work: &Path,
) -> Result<Vec<MutantReport>, TbError> {
    for s in sets {
        let r = run_verilator(
            design,
            &s.vectors,
            Stall::SOME,
            cache,
            Some(&work.join("clean").join(&s.name)),
        )?;
        if let Some(m) = r.first {
            return Err(TbError::Mutation(format!(
                "the unmutated {} fails set {}: {m}",
                design.unit, s.name
            )));
        }
    }
    let mut out = Vec::new();
    for m in mutants {
        let bad = m.apply(design)?;
        let mut outcomes = Vec::new();
        for s in sets {
            // No waveform: a kill is counted, not debugged (and each would cost a
            // traced build of the mutant).
            let o = match run_verilator(&bad, &s.vectors, Stall::SOME, cache, None) {
                Ok(r) => match r.first {
                    Some(f) => Outcome::Killed(r.mismatches, f.check),
                    None => Outcome::Survived,
                },
                Err(sim::SimError::Timeout { .. }) => Outcome::Hung,
                Err(e) => return Err(e.into()),
            };
            outcomes.push((s.name.clone(), o));
        }
        out.push(MutantReport {
            mutant: *m,
            outcomes,
        });
    }
    Ok(out)
}

/// The reports as a markdown table: a row per mutant, a column per set.
pub fn table(reports: &[MutantReport]) -> String {
    let mut t = String::new();
    let Some(first) = reports.first() else {
        return t;
    };
    let names: Vec<&str> = first.outcomes.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(t, "| unit | mutant | fault | {} |", names.join(" | "));
    let _ = writeln!(t, "|---|---|---|{}", "---|".repeat(names.len()));
    for r in reports {
        let cells: Vec<String> = r
            .outcomes
            .iter()
            .map(|(_, o)| match o {
                Outcome::Killed(n, c) => format!("killed ({n} failed, first: {})", c.name()),
                Outcome::Hung => "killed (hung)".into(),
                Outcome::Survived => "survived".into(),
            })
            .collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            r.mutant.unit,
            r.mutant.name,
            r.mutant.what,
            cells.join(" | ")
        );
    }
    t
}

/// Number of leading mutants in [`UPD_MUTANTS`] that fault the datapath (the rest
/// fault only the stream's framing).
pub const UPD_DESIGN_MUTANTS: usize = 6;

/// The saturation of one of lane 1's sums removed: the sum wraps.
fn unsaturate(v: &str, module: &str) -> Result<String, String> {
    replace_once(
        v,
        module,
        "if (s[32] != s[31]) y <= s[32] ? 32'sh80000000 : 32'sh7fffffff;",
        "if (1'b0) y <= 32'sh0;",
    )
}

/// The update unit's mutants (P ≥ 2).
pub const UPD_MUTANTS: &[Mutant] = &[
    Mutant {
        unit: "upd",
        name: "round-trunc",
        what: "lane 1 truncates eta*u instead of rounding it half up",
        edit: |v| {
            replace_once(
                v,
                "top$lanes$1$mul_d",
                "r <= p[47:16] + {31'd0, p[15]};",
                "r <= p[47:16];",
            )
        },
    },
    Mutant {
        unit: "upd",
        name: "theta-wrap",
        what: "lane 1's theta - eta*u wraps instead of saturating",
        edit: |v| unsaturate(v, "top$lanes$1$sub_t"),
    },
    Mutant {
        unit: "upd",
        name: "velocity-wrap",
        what: "lane 1's alpha*v + g wraps instead of saturating",
        edit: |v| unsaturate(v, "top$lanes$1$add_v"),
    },
    Mutant {
        unit: "upd",
        name: "gamma-for-1-gamma",
        what: "DFA steps weigh v_bp by gamma instead of 1 - gamma",
        edit: |v| replace_once(v, "top", "omg$d = one - r_gamma;", "omg$d = r_gamma;"),
    },
    Mutant {
        unit: "upd",
        name: "kind-ignored",
        what: "lane 1 runs every step as a BP step",
        edit: |v| replace_once(v, "top", "lanes$1$dfa = r_dfa;", "lanes$1$dfa = 1'b0;"),
    },
    Mutant {
        unit: "upd",
        name: "lane-swap",
        what: "lanes 0 and 1 take each other's input slots",
        edit: |v| {
            let v = replace_once(
                v,
                "top",
                "lanes$0$x = in_data[(0 * 32'h80)+:(128)];",
                "lanes$0$x = in_data[(1 * 32'h80)+:(128)];",
            )?;
            replace_once(
                &v,
                "top",
                "lanes$1$x = in_data[(1 * 32'h80)+:(128)];",
                "lanes$1$x = in_data[(0 * 32'h80)+:(128)];",
            )
        },
    },
    out_last_low("upd"),
    extra_word("upd"),
];

/// A unit whose design is replaced by a mutant's; everything else is the unit's.
pub struct Mutated<'a> {
    /// The unit.
    pub inner: &'a dyn Unit,
    /// The mutant's design.
    pub design: Emitted,
}

impl<'a> Mutated<'a> {
    /// `unit` with the mutant named `name` (one of `unit.mutants()`).
    pub fn new(unit: &'a dyn Unit, name: &str) -> Result<Self, TbError> {
        let m = unit
            .mutants()
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = unit.mutants().iter().map(|m| m.name).collect();
                TbError::Mutation(format!(
                    "mutant = {name} is not a mutant of {}; valid: {}",
                    unit.name(),
                    names.join(", ")
                ))
            })?;
        Ok(Mutated {
            inner: unit,
            design: m.apply(unit.design())?,
        })
    }
}

impl Unit for Mutated<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn design(&self) -> &Emitted {
        &self.design
    }
    fn stem(&self) -> String {
        format!("{}_mutant", self.inner.stem())
    }
    fn config(&self) -> String {
        self.inner.config()
    }
    fn cases(&self) -> usize {
        self.inner.cases()
    }
    fn case_name(&self, i: usize) -> String {
        format!("{}_mutant", self.inner.case_name(i))
    }
    fn stream(&self, i: usize) -> Result<StreamVectors, TbError> {
        self.inner.stream(i)
    }
    fn ideal_per_vector(&self, i: usize) -> f64 {
        self.inner.ideal_per_vector(i)
    }
    fn traffic(&self, i: usize, passes: usize, stats: &RunStats) -> Option<TrafficCheck> {
        self.inner.traffic(i, passes, stats)
    }
    fn vector_sets(&self) -> Result<Vec<VectorSet>, TbError> {
        self.inner.vector_sets()
    }
    fn mutants(&self) -> &'static [Mutant] {
        self.inner.mutants()
    }
}
