//! Text corpora for the recurrent models: the Jane Austen novels (`data/austen/`,
//! split by whole novels into train / valid / test), as token ids at word level
//! (capped vocabulary) or character level. Main types: [`Corpus`], [`Vocab`],
//! [`Level`].
//!
//! **Word level.** Each line is lower-cased and cut into words (runs of letters and
//! digits, with an apostrophe kept inside a word: `don't`, `elinor's`) and
//! punctuation marks (one token each); the `_` italics marks of the Gutenberg text
//! are dropped. A blank line ends a paragraph, which ends with `<eos>`, so the hard
//! line wrapping at about 70 columns carries no signal. The vocabulary is built from
//! the training split only: `<unk>` (id 0), `<eos>` (id 1), then every word seen at
//! least `min_count` times there, by decreasing count and then alphabetically (so
//! the ids do not depend on hash order). Words outside it read as `<unk>`.
//!
//! **Character level.** Every character is a token, and each line ends with a `\n`
//! token (the wrapping is part of the text a character model sees). The vocabulary is
//! `<unk>`, then every character of the training split in code-point order;
//! characters not in it (valid and test only) read as `<unk>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::{read_maybe_gz, DataError};

/// Token granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Words and punctuation, vocabulary capped by a minimum count.
    Word,
    /// Characters.
    Char,
}

/// Unknown token (id 0 at both levels).
pub const UNK: &str = "<unk>";
/// End of paragraph (word level, id 1).
pub const EOS: &str = "<eos>";

/// A vocabulary: token strings by id, and the reverse map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    /// Token string of each id.
    pub tokens: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    fn new(tokens: Vec<String>) -> Vocab {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Vocab { tokens, index }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of a token; `<unk>`'s (0) when it is not in the vocabulary.
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(0)
    }
}

/// A tokenized corpus: one vocabulary and the three splits as token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// Token granularity.
    pub level: Level,
    /// The vocabulary (from the training split).
    pub vocab: Vocab,
    /// Training split.
    pub train: Vec<u32>,
    /// Validation split.
    pub valid: Vec<u32>,
    /// Test split.
    pub test: Vec<u32>,
}

/// The words and punctuation marks of one lower-cased line (word level).
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if c == '\''
            && !cur.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
        {
            // An apostrophe between two letters stays inside the word.
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() && c != '_' {
                out.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The word-level token strings of a text: paragraphs of words, each ended by `<eos>`.
fn word_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let w = words(line);
        if w.is_empty() {
            if open {
                out.push(EOS.to_string());
                open = false;
            }
        } else {
            out.extend(w);
            open = true;
        }
    }
    if open {
        out.push(EOS.to_string());
    }
    out
}

fn read_text(path: &Path) -> Result<String, DataError> {
    text_of(path, read_maybe_gz(path)?)
}

/// The bytes of `path` (unpacked) as text: UTF-8 without NUL bytes.
pub fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String, DataError> {
    // A NUL byte is valid UTF-8 but never in a text: a binary file given by mistake.
    if let Some(k) = bytes.iter().position(|&b| b == 0) {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            reason: format!("not a text file: NUL byte at offset {k}"),
        });
    }
    String::from_utf8(bytes).map_err(|e| DataError::Format {
        path: path.to_path_buf(),
        reason: format!(
            "not UTF-8 text: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Files of the three splits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitFiles {
    /// Training text.
    pub train: PathBuf,
    /// Validation text.
    pub valid: PathBuf,
    /// Test text.
    pub test: PathBuf,
}

impl Corpus {
    /// Read and tokenize the three splits (plain or gzip'd UTF-8). `min_count` (word
    /// level only, ≥ 1) caps the vocabulary.
    pub fn load(files: &SplitFiles, level: Level, min_count: usize) -> Result<Corpus, DataError> {
        let texts = [&files.train, &files.valid, &files.test].map(|p| (p, read_text(p)));
        let mut out = Vec::new();
        for (p, t) in texts {
            let t = t?;
            if t.trim().is_empty() {
                return Err(DataError::Format {
                    path: p.clone(),
                    reason: "the split has no text: valid is at least one token".into(),
                });
            }
            out.push(t);
        }
        Ok(Corpus::from_texts(
            &out[0], &out[1], &out[2], level, min_count,
        ))
    }

    /// Tokenize three texts (see the module docs).
    pub fn from_texts(
        train: &str,
        valid: &str,
        test: &str,
        level: Level,
        min_count: usize,
    ) -> Corpus {
        let tokenize: fn(&str) -> Vec<String> = match level {
            Level::Word => word_tokens,
            Level::Char => char_tokens,
        };
        let tr = tokenize(train);
        let vocab = match level {
            Level::Word => word_vocab(&tr, min_count),
            Level::Char => char_vocab(train),
        };
        let ids = |ts: Vec<String>| ts.iter().map(|t| vocab.id(t)).collect::<Vec<u32>>();
        let (train, valid, test) = (ids(tr), ids(tokenize(valid)), ids(tokenize(test)));
        Corpus {
            level,
            vocab,
            train,
            valid,
            test,
        }
    }
}

/// `<unk>`, `<eos>`, then the training words seen at least `min_count` times, by
/// decreasing count, then alphabetically.
fn word_vocab(train: &[String], min_count: usize) -> Vocab {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in train {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut kept: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|&(t, n)| n >= min_count.max(1) && t != EOS && t != UNK)
        .collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut tokens = vec![UNK.to_string(), EOS.to_string()];
    tokens.extend(kept.into_iter().map(|(t, _)| t.to_string()));
    Vocab::new(tokens)
}

/// The characters of a text, each line ended by `\n`.
fn char_tokens(text: &str) -> Vec<String> {
    text.lines()
        .flat_map(|l| l.chars().chain(std::iter::once('\n')))
        .map(|c| c.to_string())
        .collect()
}

/// `<unk>`, then every character of the training text (and `\n`) in code-point order.
fn char_vocab(train: &str) -> Vocab {
    let mut set: Vec<char> = train.chars().filter(|&c| c != '\r').collect();
    set.push('\n');
    set.sort_unstable();
    set.dedup();
    let mut tokens = vec![UNK.to_string()];
    tokens.extend(set.into_iter().map(|c| c.to_string()));
    Vocab::new(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_punctuation_keep_inner_apostrophes_and_drop_italics_marks() {
        assert_eq!(
            words("\"Don't,\" said _Mrs._ Dashwood's  son--'twas 1811."),
            [
                "\"",
                "don't",
                ",",
                "\"",
                "said",
                "mrs",
                ".",
                "dashwood's",
                "son",
                "-",
                "-",
                "'",
                "twas",
                "1811",
                "."
            ]
        );
        assert!(words("   ").is_empty());
    }

    #[test]
    fn word_vocabulary_comes_from_train_by_count_then_alphabet_and_unknowns_read_unk() {
        let train = "b a b\nc a b\n\nd\n";
        let c = Corpus::from_texts(train, "a z\n", "b\n\n\nd b", Level::Word, 2);
        // counts in train: b 3, a 2, c 1, d 1 (c and d below min_count 2).
        assert_eq!(c.vocab.tokens, ["<unk>", "<eos>", "b", "a"]);
        // Paragraphs: "b a b c a b" <eos> "d" <eos>.
        assert_eq!(c.train, [2, 3, 2, 0, 3, 2, 1, 0, 1]);
        assert_eq!(c.valid, [3, 0, 1]);
        assert_eq!(c.test, [2, 1, 0, 2, 1]);
        // min_count 1 keeps everything; ties by alphabet.
        let c = Corpus::from_texts(train, "a", "a", Level::Word, 1);
        assert_eq!(c.vocab.tokens, ["<unk>", "<eos>", "b", "a", "c", "d"]);
    }

    #[test]
    fn char_level_keeps_line_ends_and_maps_unseen_characters_to_unk() {
        let c = Corpus::from_texts("ab\nba", "abc", "£", Level::Char, 3);
        assert_eq!(c.vocab.tokens, ["<unk>", "\n", "a", "b"]);
        assert_eq!(c.train, [2, 3, 1, 3, 2, 1]);
        assert_eq!(c.valid, [2, 3, 0, 1]);
        assert_eq!(c.test, [0, 1]);
    }

    #[test]
    fn bad_text_files_get_named_errors() {
        let dir = std::env::temp_dir().join(format!("hdfa-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.txt");
        std::fs::write(&ok, "some words\n").unwrap();
        let bin = dir.join("bin.txt");
        std::fs::write(&bin, b"ab\xff\xfecd").unwrap();
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "  \n\n").unwrap();
        let files = |t: &Path, v: &Path| SplitFiles {
            train: t.to_path_buf(),
            valid: v.to_path_buf(),
            test: ok.clone(),
        };
        let e = Corpus::load(&files(&bin, &ok), Level::Word, 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bin.txt") && e.contains("UTF-8") && e.contains("offset 2"),
            "{e}"
        );
        let e = Corpus::load(&files(&ok, &empty), Level::Char, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty.txt") && e.contains("no text"), "{e}");
        let e = Corpus::load(&files(&ok, &dir.join("missing.txt")), Level::Word, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.txt"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
