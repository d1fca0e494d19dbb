//! Docs that cannot rot: every `r3m …` command line in the user docs parses with this CLI,
//! `docs/reference/cli.md` is the CLI's own help, and each subcommand's `--help` is a snapshot.
//!
//! After changing a flag or its help: `R3M_UPDATE_DOCS=1 cargo test --release -p r3m-cli cli_docs`
//! rewrites `docs/reference/cli.md`, and `cargo insta review` (or `INSTA_UPDATE=always`) the
//! snapshots in `src/snapshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a failed test

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::Cli;

/// Help is rendered at this width, whatever the terminal, so the text is the same everywhere.
const WIDTH: usize = 100;

/// The subcommands whose help is documented, as the words a user types after `r3m`.
const COMMANDS: [&[&str]; 9] =
    [&[], &["doctor"], &["probe"], &["train"], &["embed"], &["eval"], &["eval", "bc"], &["eval", "summary"], &["view"]];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `r3m WORDS --help`, as the binary prints it.
fn long_help(words: &[&str]) -> String {
    let mut cmd = Cli::command().term_width(WIDTH).max_term_width(WIDTH);
    cmd.build();
    let mut sub = &mut cmd;
    for w in words {
        sub = sub.find_subcommand_mut(w).unwrap_or_else(|| panic!("no subcommand {w}"));
    }
    let text = sub.render_long_help().to_string();
    // no trailing spaces (clap pads some lines), so the markdown stays clean
    text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

fn cli_reference() -> String {
    let mut md = String::from(
        "# CLI reference\n\n\
         Generated from the binary's own `--help` (`r3m COMMAND --help` prints the same text); a test\n\
         fails when this page and the CLI differ. Guides: [../guide/](../guide/).\n\n",
    );
    for words in COMMANDS {
        let name = if words.is_empty() { "r3m".to_string() } else { format!("r3m {}", words.join(" ")) };
        md.push_str(&format!("- [`{name}`](#{})\n", name.replace(' ', "-")));
    }
    for words in COMMANDS {
        let name = if words.is_empty() { "r3m".to_string() } else { format!("r3m {}", words.join(" ")) };
        md.push_str(&format!("\n## {name}\n\n```text\n{}```\n", long_help(words)));
    }
    md
}

#[test]
fn cli_reference_matches_the_cli() {
    let path = repo().join("docs/reference/cli.md");
    let want = cli_reference();
    if std::env::var_os("R3M_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: regenerate it with `R3M_UPDATE_DOCS=1 cargo test --release -p r3m-cli cli_docs`",
        path.display()
    );
}

#[test]
fn every_subcommand_is_documented() {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            path.push(sub.get_name().to_string());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut all = Vec::new();
    walk(&Cli::command(), &mut Vec::new(), &mut all);
    let documented: Vec<Vec<String>> = COMMANDS.iter().map(|w| w.iter().map(|s| (*s).to_string()).collect()).collect();
    for words in all {
        assert!(documented.contains(&words), "`r3m {}` is missing from COMMANDS", words.join(" "));
    }
}

#[test]
fn help_snapshots() {
    for words in COMMANDS {
        let name = if words.is_empty() { "r3m".to_string() } else { format!("r3m-{}", words.join("-")) };
        insta::assert_snapshot!(name, long_help(words));
    }
}

/// A command line found in a document: where, and its words from `r3m` on.
#[derive(Debug)]
struct Found {
    file: PathBuf,
    line: usize,
    words: Vec<String>,
}

/// Every `r3m …` command in the fenced code blocks of `text`: continuation lines joined, comments
/// dropped, split at `&&`, `||`, `;` and `|`, the words taken from the one that is `r3m` (or ends
/// in `/r3m`, or is `$R3M`) on; a quoted word that holds a command itself (`bash -c '… r3m train …'`)
/// is searched too.
fn commands_in(file: &Path, text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let mut in_fence = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim_start();
        if t.starts_with("```") {
            in_fence = !in_fence;
            pending = None;
            continue;
        }
        if !in_fence {
            continue;
        }
        let (start, mut line) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(body) = raw.strip_suffix('\\') {
            line.push_str(body);
            line.push(' ');
            pending = Some((start, line));
            continue;
        }
        line.push_str(raw);
        search(file, start, &line, &mut found);
    }
    found
}

fn search(file: &Path, line_no: usize, line: &str, found: &mut Vec<Found>) {
    // a console prompt is not part of the command
    let line = line.trim_start().trim_start_matches("$ ");
    if line.starts_with('#') {
        return;
    }
    let Some(words) = shlex::split(line) else { return };
    // `r3m` in command position: first, or after a launcher (`nice`, `torchrun … --no-python`,
    // `xargs … -I{}`, `VAR=value`), not as an argument (`cd r3m`)
    let launched = |segment: &[String], at: usize| {
        at == 0 || {
            let before = &segment[at - 1];
            before.starts_with('-')
                || (before.contains('=') && !before.starts_with('-'))
                || ["nice", "time", "exec", "env", "nohup", "sudo", "srun", "do", "then", "else"]
                    .contains(&before.as_str())
        }
    };
    let flush = |segment: &mut Vec<String>, found: &mut Vec<Found>| {
        let is_r3m = |w: &String| w == "r3m" || w.ends_with("/r3m") || w == "$R3M";
        if let Some(at) = (0..segment.len()).find(|&i| is_r3m(&segment[i]) && launched(segment, i)) {
            found.push(Found { file: file.to_path_buf(), line: line_no, words: segment[at..].to_vec() });
        }
        segment.clear();
    };
    let mut segment: Vec<String> = Vec::new();
    for w in words {
        if w.starts_with('#') {
            break;
        }
        if ["&&", "||", ";", "|"].contains(&w.as_str()) {
            flush(&mut segment, found);
            continue;
        }
        if w.contains(' ') && w.contains("r3m ") {
            search(file, line_no, &w, found);
        }
        // `cmd; next` splits as `cmd;` and `next`
        let ends = w.ends_with(';');
        segment.push(w.trim_end_matches(';').to_string());
        if ends {
            flush(&mut segment, found);
        }
    }
    flush(&mut segment, found);
}

/// The documents users copy commands from.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md"), root.join("docs/benchmarks.md")];
    for dir in ["docs/guide", "docs/results"] {
        let mut md: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "md")).collect())
            .unwrap_or_default();
        md.sort();
        files.extend(md);
    }
    files.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn documented_command_lines_parse() {
    let mut all = Vec::new();
    for file in documents() {
        all.extend(commands_in(&file, &std::fs::read_to_string(&file).unwrap()));
    }
    let mut bad = Vec::new();
    for f in &all {
        let mut words = f.words.clone();
        words[0] = "r3m".into();
        if let Err(e) = Cli::try_parse_from_words(&words) {
            bad.push(format!(
                "{}:{}: {}\n    {}",
                f.file.strip_prefix(repo()).unwrap_or(&f.file).display(),
                f.line,
                words.join(" "),
                e.to_string().lines().next().unwrap_or_default()
            ));
        }
    }
    assert!(bad.is_empty(), "{} documented command line(s) do not parse:\n{}", bad.len(), bad.join("\n"));
    // the README's quick start alone holds more than this: an extractor that finds nothing fails
    assert!(all.len() >= 10, "only {} r3m command lines found in the docs", all.len());
    for sub in ["train", "embed", "eval", "view", "probe", "doctor"] {
        assert!(all.iter().any(|f| f.words.get(1).is_some_and(|w| w == sub)), "no documented `r3m {sub}` command");
    }
}

#[test]
fn the_extractor_finds_what_a_shell_would_run() {
    let md = "text r3m train --nope\n```bash\n# r3m train --bad\ncd r3m; r3m probe a.mp4 && r3m train \\\n  --videos D --out R \
              # comment\ntorchrun --nproc-per-node=2 --no-python r3m train --videos D --out R\nsrun bash -c 'r3m embed \
              --checkpoint C --videos V --out O'\n```\n";
    let found = commands_in(Path::new("x.md"), md);
    let lines: Vec<String> = found.iter().map(|f| format!("{}: {}", f.line, f.words.join(" "))).collect();
    assert_eq!(
        lines,
        [
            "4: r3m probe a.mp4",
            "4: r3m train --videos D --out R",
            "6: r3m train --videos D --out R",
            "7: r3m embed --checkpoint C --videos V --out O"
        ]
    );
    // and a renamed flag fails to parse, naming it
    let e =
        Cli::try_parse_from_words(&["r3m", "eval", "bc", "--task", "t", "--data", "d", "--out", "o", "--steps", "5"])
            .unwrap_err()
            .to_string();
    assert!(e.contains("--steps"), "{e}");
}

impl Cli {
    fn try_parse_from_words<S: AsRef<str>>(words: &[S]) -> Result<Cli, clap::Error> {
        use clap::Parser;
        match Cli::try_parse_from(words.iter().map(AsRef::as_ref)) {
            // `--help` and `--version` are valid command lines
            Err(e)
                if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) =>
            {
                Cli::try_parse_from(["r3m", "doctor"])
            }
            r => r,
        }
    }
}
