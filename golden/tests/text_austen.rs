//! The Austen corpus as the recurrent models read it (`data/austen/`).

use std::path::{Path, PathBuf};

use golden::text::{Corpus, Level, SplitFiles};

fn files() -> SplitFiles {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/austen");
    let f = |s: &str| -> PathBuf { d.join(format!("austen-{s}.txt.gz")) };
    SplitFiles {
        train: f("train"),
        valid: f("valid"),
        test: f("test"),
    }
}

#[test]
fn austen_word_vocabulary_holds_exactly_the_training_words_seen_three_times() {
    let c = Corpus::load(&files(), Level::Word, 3).unwrap();
    let v = c.vocab.len();
    let mut counts = vec![0usize; v];
    for &t in &c.train {
        counts[t as usize] += 1;
    }
    // Every kept word occurs at least 3 times in the training split, in order of count.
    assert!(counts[2..].iter().all(|&n| n >= 3));
    assert!(counts[2..].windows(2).all(|w| w[0] >= w[1]));
    for split in [&c.train, &c.valid, &c.test] {
        assert!(split.iter().all(|&t| (t as usize) < v));
    }
    let unk = |s: &[u32]| s.iter().filter(|&&t| t == 0).count() as f64 / s.len() as f64;
    println!(
        "word level: vocabulary {v}, tokens train {} valid {} test {}, <unk> rate train {:.2}% valid {:.2}% test {:.2}%",
        c.train.len(),
        c.valid.len(),
        c.test.len(),
        100.0 * unk(&c.train),
        100.0 * unk(&c.valid),
        100.0 * unk(&c.test)
    );
    // Words rarer than 3 in training are a small share of any novel's running text.
    assert!(unk(&c.train) < 0.02 && unk(&c.test) < 0.05);
    // A larger cap keeps fewer words, a smaller one more.
    assert!(Corpus::load(&files(), Level::Word, 10).unwrap().vocab.len() < v);
    assert!(Corpus::load(&files(), Level::Word, 1).unwrap().vocab.len() > v);
}

#[test]
fn austen_char_level_has_one_token_per_character_and_line_end() {
    let c = Corpus::load(&files(), Level::Char, 3).unwrap();
    let train = golden::data::read_maybe_gz(&files().train).unwrap();
    let text = String::from_utf8(train).unwrap();
    // One token per character, plus one per line end (the text's own '\n's, and one for
    // a last line without it).
    let expect = text.lines().map(|l| l.chars().count() + 1).sum::<usize>();
    assert_eq!(c.train.len(), expect);
    assert!(
        !c.train.contains(&0),
        "every training character is in the vocabulary"
    );
    println!(
        "char level: vocabulary {}, tokens train {} valid {} test {}",
        c.vocab.len(),
        c.train.len(),
        c.valid.len(),
        c.test.len()
    );
}
