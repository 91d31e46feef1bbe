//! `hdfa cost`: the error-propagation cost model's tables ([`golden::cost`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;
use golden::cost::{self, CnnModel, CostRow, RnnModel};

/// Options of `hdfa cost`.
#[derive(Args, Clone, Debug)]
pub struct CostArgs {
    /// Network: vgg16, resnet18, resnet50, rnn, lstm, gru (the paper's shapes), a
    /// config file of ours (CNN or RNN), or `paper` for all six of the paper's.
    #[arg(long, default_value = "paper")]
    pub network: String,
    /// Channel groups G of the revised CNN DFA (default: 4 and 8; for a config also
    /// its own G).
    #[arg(long)]
    pub groups: Option<usize>,
    /// Sparsity s of the binary feedback, in [0, 1) (default: CNNs 0, or a config's
    /// own; RNNs 0, 0.8, 0.95 and 0.98).
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// HDFA's BP ratio p, in [0, 1] (default: CNNs 0.1, 0.2, 0.3; RNNs 0.1, 0.2).
    #[arg(long)]
    pub bp_ratio: Option<f64>,
    /// Print the rows as a JSON array (keys network, method, groups, bp_ratio,
    /// sparsity, bytes, ops, per).
    #[arg(long)]
    pub json: bool,
}

/// The paper's six networks.
pub const PAPER: [&str; 6] = ["vgg16", "resnet18", "resnet50", "rnn", "lstm", "gru"];

/// The rows of one network by name or config path.
pub fn rows_of(a: &CostArgs, network: &str) -> Result<Vec<CostRow>> {
    if let Some(s) = a.sparsity {
        if !(0.0..1.0).contains(&s) {
            bail!("--sparsity {s} is out of range: valid range is [0, 1)");
        }
    }
    if let Some(p) = a.bp_ratio {
        if !(0.0..=1.0).contains(&p) {
            bail!("--bp-ratio {p} is out of range: valid range is [0, 1]");
        }
    }
    if a.groups == Some(0) {
        bail!("--groups 0 is out of range: valid range is 1 or more (a divisor of the channels)");
    }
    let cnn = |m: CnnModel, own_g: Option<usize>, own_s: f64| -> Result<Vec<CostRow>> {
        let groups: Vec<usize> = match a.groups {
            Some(g) => vec![g],
            None => {
                let mut v: Vec<usize> = own_g.into_iter().chain(cost::GROUPS).collect();
                v.dedup();
                // A config's net may be too narrow for 8 groups: keep what divides.
                v.retain(|&g| m.revised(g, 0.0).is_ok());
                v
            }
        };
        let ratios = a.bp_ratio.map_or(cost::CNN_RATIOS.to_vec(), |p| vec![p]);
        Ok(m.rows(&groups, &ratios, a.sparsity.unwrap_or(own_s))?)
    };
    let rnn = |m: RnnModel, own_s: Option<f64>| -> Result<Vec<CostRow>> {
        if a.groups.is_some() {
            bail!("--groups applies to CNNs only; {} is recurrent", m.name);
        }
        let sp = match a.sparsity {
            Some(s) => vec![s],
            None => {
                let mut v: Vec<f64> = cost::RNN_SPARSITIES.to_vec();
                if let Some(s) = own_s.filter(|s| !v.contains(s)) {
                    v.push(s);
                }
                v
            }
        };
        let ratios = a.bp_ratio.map_or(cost::RNN_RATIOS.to_vec(), |p| vec![p]);
        Ok(m.rows(&ratios, &sp))
    };
    match network {
        "vgg16" => cnn(CnnModel::vgg16()?, None, 0.0),
        "resnet18" => cnn(CnnModel::resnet(18)?, None, 0.0),
        "resnet50" => cnn(CnnModel::resnet(50)?, None, 0.0),
        "rnn" | "lstm" | "gru" => rnn(RnnModel::paper(network)?, None),
        path if path.ends_with(".toml") => {
            let file = Path::new(path);
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading config {}", file.display()))?;
            if golden::rnn::config::is_rnn_config(&text) {
                let c = golden::rnn::config::RnnConfig::load(file)?;
                let corpus = c.load_corpus()?;
                let m = RnnModel {
                    name: c.raw.name.clone(),
                    gates: RnnModel::gates_of(&c.raw.cell)?,
                    embed: c.raw.embed,
                    hidden: c.raw.hidden,
                    vocab: corpus.vocab.len(),
                    steps: c.raw.bptt,
                    batch: c.raw.batch,
                };
                let own = c.dfa.map(|d| d.sparsity);
                rnn(m, own)
            } else {
                let c = golden::config::Config::load(file)?;
                let m = cnn_of_config(&c)?;
                cnn(m, Some(c.dfa.groups), c.dfa.sparsity)
            }
        }
        other => bail!(
            "--network {other}: valid values are {}, paper, or a config file (*.toml)",
            PAPER.join(", ")
        ),
    }
}

/// A CNN config's shapes for the cost model.
pub fn cnn_of_config(c: &golden::config::Config) -> Result<CnnModel> {
    let [ch, h, w] = c.raw.input;
    let blocks = golden::cnn::net::build_blocks((ch, h, w), &c.layers, &c.raw.modules)?;
    Ok(CnnModel::from_blocks(
        &c.raw.name,
        &blocks,
        c.raw.classes,
        c.dfa.k,
    ))
}

/// Run `hdfa cost`.
pub fn run(a: &CostArgs) -> Result<()> {
    let nets: Vec<String> = if a.network == "paper" {
        PAPER.iter().map(|s| s.to_string()).collect()
    } else {
        vec![a.network.clone()]
    };
    let mut all = Vec::new();
    for n in &nets {
        all.push(rows_of(a, n)?);
    }
    if a.json {
        let flat: Vec<&CostRow> = all.iter().flatten().collect();
        println!("{}", serde_json::to_string_pretty(&flat)?);
        return Ok(());
    }
    println!("Error-propagation cost model (golden::cost).");
    for line in cost::ASSUMPTIONS.lines() {
        println!("  {line}");
    }
    for rows in &all {
        println!();
        print!("{}", cost::table(rows));
    }
    Ok(())
}
