fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lanes: usize = args[1].parse().unwrap();
    let sp: f64 = args[2].parse().unwrap();
    let n: usize = args[3].parse().unwrap();
    let sc = testbench::BsbuScenario::new(lanes, args[4].parse().unwrap(), args[5].parse().unwrap(), sp, n, 1).unwrap();
    let cache = sim::verilator::default_cache_dir();
    let work = std::path::Path::new("/tmp/hdfa-work");
    for k in [testbench::SimKind::Verilator, testbench::SimKind::Icarus] {
        let r = sc.run(k, &cache, work).unwrap();
        println!("{}", r.summary());
        if let Some(m) = &r.stats.first { println!("{m}"); }
    }
}
