//! Verilator through our own run-time FFI shim.
//!
//! For a design we generate a small C++ file exporting `extern "C"` functions (new,
//! eval, set/get a port by index, delete; FST trace open/dump/close in a traced
//! build), Verilate the design with it (`--cc --exe`, `-fPIC`, `-shared`), compile
//! it with Verilator's makefile into a shared library and load that with
//! `libloading`. Every run uses an untraced build ([`build`]); the rerun that writes
//! a waveform after a failed check uses a traced one ([`build_traced`]), because
//! tracing more than quadruples the C++ to compile.
//!
//! Builds are cached under `<cache>/verilator/<unit>-<hash>/` (`<unit>-fst-<hash>/`
//! when traced), keyed by a hash of the Verilog, the shim, the flags and
//! `verilator --version`. A file lock serialises builders (parallel tests raced
//! without one) and a finished build is published by an atomic rename, so a reader
//! never sees half a build.
//!
//! Verilator's own run-time library (`verilated.cpp`, the thread pool, the FST
//! writer when traced) is the same for every design built with the same flags, and
//! compiling it took about 40% of each build's CPU time. The first build therefore
//! publishes its run-time objects under `<cache>/verilator/runtime-<hash>/` (keyed
//! by the flags, `verilator --version` and `g++ --version`), and later builds copy
//! them into their object directory after Verilator wrote its makefile and before
//! `make` runs: `make` sees objects newer than the makefile and their sources, and
//! links them as they are. Verilator has no option for a shared prebuilt run time
//! in this version, hence the copy.

use std::ffi::{c_char, c_void, CString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use libloading::Library;
use rtl::{Dir, Emitted, Port};

use crate::hash::content_hash;
use crate::{io_err, tool, SimError};

/// Verilator flags of every build (part of the cache key). Verilator only writes
/// the C++ and its makefile; [`MAKE_ARGS`] then compiles it.
const FLAGS: &[&str] = &[
    "--cc",
    "--exe",
    "--top-module",
    "top",
    "-Wno-fatal",
    "-Wno-WIDTH",
    "-CFLAGS",
    "-fPIC -O1",
    "-LDFLAGS",
    "-shared",
];

/// Arguments of the `make` that compiles a Verilated design (part of the cache key).
/// `make` runs separately from Verilator (not `--build`) because the run-time
/// objects depend on the makefile Verilator writes: copied in after it, they are
/// newer and `make` keeps them.
const MAKE_ARGS: &[&str] = &[
    "-j",
    "2",
    // The design's code at -O1: the dce's compiled in 9.5 s against 18.6 s at -O2.
    "OPT_FAST=-O1",
    "OPT_GLOBAL=-O1",
    // Code that runs once (constructors, initial blocks: a stored weight memory's
    // contents) at -O0. Verilator splits a large design into files and compiles
    // these apart; for the bsbu at its limits (2.3 MB of Verilog) they took 97 s of
    // CPU at -O1 and 24 s at -O0.
    "OPT_SLOW=-O0",
];

/// The extra flag of a traced build ([`build_traced`]).
const TRACE_FLAG: &str = "--trace-fst";

const LIB_NAME: &str = "libhdfa_model.so";

/// Whether a build can write an FST waveform. Tracing more than quadrupled the C++
/// to compile (the dce's model: 2.2 s at -O1 without it, 9.5 s with it) and a
/// waveform is only wanted after a failed check, so every run uses an untraced build
/// and only the rerun that writes a waveform builds (and caches) the traced one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracing {
    /// No waveform support: the model of every run.
    Off,
    /// `--trace-fst`: the model of a waveform rerun.
    Fst,
}

impl Tracing {
    fn flags(self) -> Vec<&'static str> {
        let mut f = FLAGS.to_vec();
        if self == Tracing::Fst {
            f.push(TRACE_FLAG);
        }
        f.extend_from_slice(MAKE_ARGS);
        f
    }
}

/// The C++ shim for a design's ports; with `tracing` on it also exports the FST
/// trace functions.
pub fn shim_source(ports: &[Port], tracing: Tracing) -> String {
    let mut set = String::new();
    let mut get = String::new();
    let mut set_chunk = String::new();
    let mut get_chunk = String::new();
    for (i, p) in ports.iter().enumerate() {
        if p.width > 64 {
            // Verilator keeps a port wider than 64 bits as 32-bit words (VlWide).
            if p.dir == Dir::In {
                set_chunk.push_str(&format!(
                    "    case {i}: h->top->{}[k] = v; break;\n",
                    p.name
                ));
            }
            get_chunk.push_str(&format!("    case {i}: return h->top->{}[k];\n", p.name));
            continue;
        }
        if p.dir == Dir::In {
            set.push_str(&format!("    case {i}: h->top->{} = v; break;\n", p.name));
        }
        get.push_str(&format!(
            "    case {i}: return (uint64_t)h->top->{};\n",
            p.name
        ));
    }
    let traced = tracing == Tracing::Fst;
    let pick = |on: &str, off: &str| if traced { on } else { off }.to_string();
    let trace_head = pick(
        "#include \"verilated_fst_c.h\"\n\nstruct Handle { VerilatedContext* ctx; Vtop* top; VerilatedFstC* tfp; };\n",
        "\nstruct Handle { VerilatedContext* ctx; Vtop* top; };\n",
    );
    let trace_new = pick("  h->ctx->traceEverOn(true);\n  h->tfp = nullptr;\n", "");
    let trace_delete = pick("  hdfa_trace_close(p);\n", "");
    let trace_fns = pick(TRACE_FNS, "");
    format!(
        r#"// Generated by hdfa sim: run-time FFI shim for a Verilated `top`.
#include <cstdint>
#include "Vtop.h"
#include "verilated.h"
{trace_head}
extern "C" {{
void* hdfa_new() {{
  Handle* h = new Handle;
  h->ctx = new VerilatedContext;
{trace_new}  h->top = new Vtop(h->ctx, "top");
  return h;
}}
void hdfa_eval(void* p) {{ static_cast<Handle*>(p)->top->eval(); }}
void hdfa_set(void* p, uint32_t port, uint64_t v) {{
  Handle* h = static_cast<Handle*>(p);
  switch (port) {{
{set}    default: break;
  }}
}}
uint64_t hdfa_get(void* p, uint32_t port) {{
  Handle* h = static_cast<Handle*>(p);
  switch (port) {{
{get}    default: return 0;
  }}
}}
// Ports wider than 64 bits, by 32-bit word k (bits 32k..32k+31).
void hdfa_set_chunk(void* p, uint32_t port, uint32_t k, uint32_t v) {{
  Handle* h = static_cast<Handle*>(p);
  switch (port) {{
{set_chunk}    default: break;
  }}
}}
uint32_t hdfa_get_chunk(void* p, uint32_t port, uint32_t k) {{
  Handle* h = static_cast<Handle*>(p);
  switch (port) {{
{get_chunk}    default: return 0;
  }}
}}
{trace_fns}void hdfa_delete(void* p) {{
  Handle* h = static_cast<Handle*>(p);
{trace_delete}  h->top->final();
  delete h->top;
  delete h->ctx;
  delete h;
}}
}}
"#
    )
}

/// The shim's FST trace functions (traced builds only).
const TRACE_FNS: &str = r#"void hdfa_trace_open(void* p, const char* path) {
  Handle* h = static_cast<Handle*>(p);
  h->tfp = new VerilatedFstC;
  h->top->trace(h->tfp, 99);
  h->tfp->open(path);
}
void hdfa_trace_dump(void* p, uint64_t t) {
  Handle* h = static_cast<Handle*>(p);
  if (h->tfp) h->tfp->dump(t);
}
void hdfa_trace_close(void* p) {
  Handle* h = static_cast<Handle*>(p);
  if (h->tfp) { h->tfp->close(); delete h->tfp; h->tfp = nullptr; }
}
"#;

/// Where cached builds live: `$HDFA_CACHE_DIR`, else `<workspace target>/hdfa-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HDFA_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d).join("hdfa-cache");
    }
    // sim/ sits one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("hdfa-cache")
}

/// A finished (possibly cached) Verilator build.
#[derive(Clone, Debug)]
pub struct Build {
    /// The shared library.
    pub lib: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Wall time of the build (0 when cached).
    pub seconds: f64,
    /// Whether a fresh build linked the published run-time objects instead of
    /// compiling Verilator's run time again (false when cached).
    pub runtime_reused: bool,
    /// Whether the model can write a waveform.
    pub tracing: Tracing,
}

/// Verilate `design` into a loadable shared library without waveform support, or
/// reuse a cached one.
pub fn build(design: &Emitted, cache: &Path) -> Result<Build, SimError> {
    build_with(design, cache, Tracing::Off)
}

/// The same with FST waveform support (a separate cached build).
pub fn build_traced(design: &Emitted, cache: &Path) -> Result<Build, SimError> {
    build_with(design, cache, Tracing::Fst)
}

fn build_with(design: &Emitted, cache: &Path, tracing: Tracing) -> Result<Build, SimError> {
    tool::require("verilator")?;
    tool::require("make")?;
    tool::require("g++")?;
    let version = tool::version("verilator")?;
    let shim = shim_source(&design.ports, tracing);
    let all_flags = tracing.flags();
    let flags = all_flags.join("\u{1f}");
    let key = content_hash(&[
        design.verilog.as_bytes(),
        shim.as_bytes(),
        flags.as_bytes(),
        version.as_bytes(),
    ]);
    let root = cache.join("verilator");
    fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
    let name = match tracing {
        Tracing::Off => format!("{}-{}", design.unit, key),
        Tracing::Fst => format!("{}-fst-{}", design.unit, key),
    };
    let dir = root.join(&name);
    let lib = dir.join(LIB_NAME);
    if lib.exists() {
        return Ok(Build {
            lib,
            cached: true,
            seconds: 0.0,
            runtime_reused: false,
            tracing,
        });
    }
    let lock_path = root.join(format!("{name}.lock"));
    let lock = fs::File::create(&lock_path).map_err(io_err("creating", &lock_path))?;
    lock.lock().map_err(io_err("locking", &lock_path))?;
    if lib.exists() {
        return Ok(Build {
            lib,
            cached: true,
            seconds: 0.0,
            runtime_reused: false,
            tracing,
        });
    }
    let t0 = std::time::Instant::now();
    let tmp = root.join(format!("{name}.tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    let v = tmp.join("top.v");
    fs::write(&v, &design.verilog).map_err(io_err("writing", &v))?;
    let cpp = tmp.join("hdfa_shim.cpp");
    fs::write(&cpp, &shim).map_err(io_err("writing", &cpp))?;
    let mut cmd = Command::new("verilator");
    cmd.current_dir(&tmp).args(FLAGS);
    if tracing == Tracing::Fst {
        cmd.arg(TRACE_FLAG);
    }
    cmd.args(["--Mdir", "obj", "-o", LIB_NAME, "top.v", "hdfa_shim.cpp"]);
    tool::run("verilator", &mut cmd)?;
    let obj = tmp.join("obj");
    let runtime = runtime_dir(&root, &flags, &version)?;
    let reused = reuse_runtime(&runtime, &obj)?;
    let mut cmd = Command::new("make");
    cmd.current_dir(&obj)
        .args(["-f", "Vtop.mk"])
        .args(MAKE_ARGS)
        .arg(LIB_NAME);
    tool::run("make", &mut cmd)?;
    if !reused {
        publish_runtime(&runtime, &obj)?;
    }
    let built = obj.join(LIB_NAME);
    let dest = tmp.join(LIB_NAME);
    fs::rename(&built, &dest).map_err(io_err("moving", &built))?;
    fs::rename(&tmp, &dir).map_err(io_err("publishing", &dir))?;
    drop(lock);
    Ok(Build {
        lib,
        cached: false,
        seconds: t0.elapsed().as_secs_f64(),
        runtime_reused: reused,
        tracing,
    })
}

/// Where the run-time objects of builds with our flags, this Verilator and this g++ live.
fn runtime_dir(root: &Path, flags: &str, verilator_version: &str) -> Result<PathBuf, SimError> {
    let cxx = tool::version("g++")?;
    let key = content_hash(&[
        flags.as_bytes(),
        verilator_version.as_bytes(),
        cxx.as_bytes(),
    ]);
    Ok(root.join(format!("runtime-{key}")))
}

/// Whether a file in a Verilator object directory is part of the run-time library.
fn is_runtime_object(name: &str) -> bool {
    name.starts_with("verilated") && name.ends_with(".o")
}

/// Copy the run-time objects in `from` into `to` (a copy, not a link: its
/// modification time is now, so `make` keeps it).
fn copy_runtime_objects(from: &Path, to: &Path) -> Result<(), SimError> {
    for entry in fs::read_dir(from).map_err(io_err("reading", from))? {
        let entry = entry.map_err(io_err("reading", from))?;
        let name = entry.file_name();
        if is_runtime_object(&name.to_string_lossy()) {
            let dest = to.join(&name);
            fs::copy(entry.path(), &dest).map_err(io_err("copying", &dest))?;
        }
    }
    Ok(())
}

/// Copy published run-time objects into a fresh object directory; false when none
/// are published yet (this build compiles them and publishes them).
fn reuse_runtime(runtime: &Path, obj: &Path) -> Result<bool, SimError> {
    if !runtime.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(obj).map_err(io_err("creating", obj))?;
    copy_runtime_objects(runtime, obj)?;
    Ok(true)
}

/// Publish a finished build's run-time objects (atomically; a lost race is harmless,
/// both builds compiled the same sources with the same flags).
fn publish_runtime(runtime: &Path, obj: &Path) -> Result<(), SimError> {
    if runtime.is_dir() {
        return Ok(());
    }
    let tmp = runtime.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    copy_runtime_objects(obj, &tmp)?;
    if fs::rename(&tmp, runtime).is_err() {
        // Another build published first.
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(())
}

type NewFn = unsafe extern "C" fn() -> *mut c_void;
type EvalFn = unsafe extern "C" fn(*mut c_void);
type SetFn = unsafe extern "C" fn(*mut c_void, u32, u64);
type GetFn = unsafe extern "C" fn(*mut c_void, u32) -> u64;
type SetChunkFn = unsafe extern "C" fn(*mut c_void, u32, u32, u32);
type GetChunkFn = unsafe extern "C" fn(*mut c_void, u32, u32) -> u32;
type OpenFn = unsafe extern "C" fn(*mut c_void, *const c_char);
type DumpFn = unsafe extern "C" fn(*mut c_void, u64);

/// A live Verilated model.
pub struct VerilatorModel {
    handle: *mut c_void,
    eval: EvalFn,
    set: SetFn,
    get: GetFn,
    set_chunk: SetChunkFn,
    get_chunk: GetChunkFn,
    // The FST functions (open, dump, close): traced builds only.
    trace: Option<(OpenFn, DumpFn, EvalFn)>,
    delete: EvalFn,
    ports: Vec<Port>,
    tracing: bool,
    // Keeps the code behind the function pointers mapped; dropped last.
    _lib: Library,
}

fn sym<T: Copy>(lib: &Library, path: &Path, name: &str) -> Result<T, SimError> {
    // SAFETY: the symbols are the ones our generated shim exports, with these signatures.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| SimError::Load {
            path: path.display().to_string(),
            msg: format!("{name}: {e}"),
        })
}

impl VerilatorModel {
    /// Load a built model. Each call creates an independent instance.
    pub fn load(build: &Build, ports: &[Port]) -> Result<Self, SimError> {
        let path = &build.lib;
        // SAFETY: the library is our own Verilator build; its initialisers are Verilator's.
        let lib = unsafe { Library::new(path) }.map_err(|e| SimError::Load {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let new: NewFn = sym(&lib, path, "hdfa_new")?;
        let m = VerilatorModel {
            eval: sym(&lib, path, "hdfa_eval")?,
            set: sym(&lib, path, "hdfa_set")?,
            get: sym(&lib, path, "hdfa_get")?,
            set_chunk: sym(&lib, path, "hdfa_set_chunk")?,
            get_chunk: sym(&lib, path, "hdfa_get_chunk")?,
            trace: match build.tracing {
                Tracing::Fst => Some((
                    sym(&lib, path, "hdfa_trace_open")?,
                    sym(&lib, path, "hdfa_trace_dump")?,
                    sym(&lib, path, "hdfa_trace_close")?,
                )),
                Tracing::Off => None,
            },
            delete: sym(&lib, path, "hdfa_delete")?,
            // SAFETY: hdfa_new takes nothing and returns an owned handle.
            handle: unsafe { new() },
            ports: ports.to_vec(),
            tracing: false,
            _lib: lib,
        };
        Ok(m)
    }

    /// Index of a port.
    pub fn port(&self, name: &'static str, unit: &'static str) -> Result<u32, SimError> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32)
            .ok_or(SimError::NoPort { unit, port: name })
    }

    /// Drive an input port.
    #[inline]
    pub fn set(&mut self, port: u32, v: u64) {
        // SAFETY: handle is live until Drop; unknown indices are ignored by the shim.
        unsafe { (self.set)(self.handle, port, v) }
    }

    /// Read a port (zero-extended).
    #[inline]
    pub fn get(&self, port: u32) -> u64 {
        // SAFETY: as above.
        unsafe { (self.get)(self.handle, port) }
    }

    /// Drive an input port of any width from 32-bit words, least significant first
    /// (a port of ≤ 64 bits takes the first two).
    pub fn set_words(&mut self, port: u32, words: &[u32]) {
        if self.ports[port as usize].width <= 64 {
            let v = words.first().copied().unwrap_or(0) as u64
                | (words.get(1).copied().unwrap_or(0) as u64) << 32;
            self.set(port, v);
            return;
        }
        for (k, &w) in words.iter().enumerate() {
            // SAFETY: handle is live; the shim indexes only words of this port.
            unsafe { (self.set_chunk)(self.handle, port, k as u32, w) }
        }
    }

    /// Read a port of any width as `n` 32-bit words, least significant first.
    pub fn get_words(&self, port: u32, n: usize) -> Vec<u32> {
        if self.ports[port as usize].width <= 64 {
            let v = self.get(port);
            return (0..n)
                .map(|k| if k < 2 { (v >> (32 * k)) as u32 } else { 0 })
                .collect();
        }
        // SAFETY: as above; n never exceeds the port's words (the harness asks for
        // ⌈width / 32⌉).
        (0..n)
            .map(|k| unsafe { (self.get_chunk)(self.handle, port, k as u32) })
            .collect()
    }

    /// Settle the design.
    #[inline]
    pub fn eval(&mut self) {
        // SAFETY: as above.
        unsafe { (self.eval)(self.handle) }
    }

    /// Start writing an FST waveform.
    pub fn trace_to(&mut self, path: &Path) -> Result<(), SimError> {
        let Some((open, _, _)) = self.trace else {
            return Err(SimError::Protocol {
                sim: "verilator",
                msg: "this model was built without waveform support (use build_traced)".into(),
            });
        };
        let c = CString::new(path.display().to_string()).map_err(|_| SimError::Protocol {
            sim: "verilator",
            msg: "NUL in waveform path".into(),
        })?;
        // SAFETY: handle is live; the shim copies the path.
        unsafe { open(self.handle, c.as_ptr()) };
        self.tracing = true;
        Ok(())
    }

    /// Record the waveform at time `t` (no-op unless tracing).
    #[inline]
    pub fn dump(&mut self, t: u64) {
        if let (true, Some((_, dump, _))) = (self.tracing, self.trace) {
            // SAFETY: handle is live.
            unsafe { dump(self.handle, t) }
        }
    }

    /// Flush and close the waveform.
    pub fn trace_close(&mut self) {
        if let (true, Some((_, _, close))) = (self.tracing, self.trace) {
            // SAFETY: handle is live.
            unsafe { close(self.handle) };
            self.tracing = false;
        }
    }
}

impl Drop for VerilatorModel {
    fn drop(&mut self) {
        // SAFETY: the handle came from hdfa_new and is deleted once.
        unsafe { (self.delete)(self.handle) }
    }
}
