//! What the binary accepts, read from its --help, and the checker that finds
//! `gatehouse <command> --flags` in argument vectors and shell scripts.

use super::*;

pub(crate) struct Cli {
    /// Subcommand -> its long flags (without the leading dashes).
    pub(crate) flags: BTreeMap<String, BTreeSet<String>>,
    /// `GATEHOUSE_*` variables `gatehouse start` reads.
    pub(crate) start_env: BTreeSet<String>,
    /// `GATEHOUSE_*` variables any subcommand reads (start's plus e.g. GATEHOUSE_ADMIN).
    pub(crate) any_env: BTreeSet<String>,
}

pub(crate) fn help(args: &[&str]) -> String {
    let out = run(Command::new(BIN).args(args));
    assert!(out.status.success(), "gatehouse {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

pub(crate) fn flags_in_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',']).filter_map(flag_name).collect::<Vec<_>>())
        .collect()
}

pub(crate) fn env_in_help(help: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\[env: (GATEHOUSE_[A-Z0-9_]+)").unwrap();
    re.captures_iter(help).map(|c| c[1].to_string()).collect()
}

pub(crate) fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let top = help(&["--help"]);
        let subcommands: Vec<String> = top
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_string)
            .collect();
        assert!(subcommands.iter().any(|c| c == "start"), "no start command in:\n{top}");
        let mut flags = BTreeMap::new();
        let mut any_env = BTreeSet::new();
        let mut start_env = BTreeSet::new();
        for sub in subcommands {
            let h = help(&[&sub, "--help"]);
            let env = env_in_help(&h);
            if sub == "start" {
                start_env = env.clone();
            }
            any_env.extend(env);
            flags.insert(sub, flags_in_help(&h));
        }
        Cli { flags, start_env, any_env }
    })
}

/// `--bind-addr=1.2.3.4` -> `bind-addr`; anything that is not a long flag -> None.
pub(crate) fn flag_name(token: &str) -> Option<String> {
    let rest = token.strip_prefix("--")?;
    let name = rest.split('=').next().unwrap_or("");
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then(|| name.to_string())
}

// ---------------------------------------------------------------------------------------
// Finding `gatehouse <command> --flags` in argument vectors and shell scripts.

/// One run of the binary found in a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invocation {
    pub(crate) command: String,
    pub(crate) flags: Vec<String>,
}

/// Splits shell text into simple commands (at newlines, `;`, `&&`, `||`, `|`) of
/// whitespace-separated words with quotes removed, dropping comments. Rough, but enough
/// to find flags in the scripts these files carry.
pub(crate) fn shell_commands(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in script.lines() {
        let mut words = Vec::new();
        for raw in line.split_whitespace() {
            if raw.starts_with('#') {
                break;
            }
            for (i, part) in raw.split(';').enumerate() {
                let boundary = i > 0 || matches!(part, "&&" | "||" | "|");
                if boundary && !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
                let word: String = part.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
                if !word.is_empty() && !matches!(word.as_str(), "&&" | "||" | "|") {
                    words.push(word);
                }
            }
        }
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

pub(crate) fn is_gatehouse(word: &str) -> bool {
    word == "gatehouse" || word.ends_with("/gatehouse")
}

/// The binary's runs in one argument vector. When the vector is `sh -c SCRIPT`, the script
/// is searched: flags on a line that runs `gatehouse X` belong to X, and flags on other
/// lines of a script that runs `gatehouse start` are taken as start flags (scripts build
/// up flag lists such as `seeds="$seeds --join ..."`).
pub(crate) fn invocations(argv: &[String]) -> Vec<Invocation> {
    let subcommands = &cli().flags;
    let is_shell = argv.len() >= 2
        && matches!(argv[0].rsplit('/').next(), Some("sh" | "bash" | "dash"))
        && argv.iter().any(|a| a == "-c");
    let commands: Vec<Vec<String>> = if is_shell {
        argv.iter().skip_while(|a| *a != "-c").skip(1).flat_map(|s| shell_commands(s)).collect()
    } else {
        vec![argv.iter().map(|a| a.trim().to_string()).collect()]
    };
    let mut found = Vec::new();
    let mut loose_flags = Vec::new();
    for words in &commands {
        let mut at = None;
        for (i, w) in words.iter().enumerate() {
            if is_gatehouse(w) && words.get(i + 1).is_some_and(|c| subcommands.contains_key(c)) {
                at = Some(i);
                break;
            }
        }
        match at {
            Some(i) => found.push(Invocation {
                command: words[i + 1].clone(),
                flags: words[i + 2..].iter().filter_map(|w| flag_name(w)).collect(),
            }),
            None if is_shell => loose_flags.extend(words.iter().filter_map(|w| flag_name(w))),
            None => {}
        }
    }
    if !loose_flags.is_empty() {
        match found.iter_mut().find(|inv| inv.command == "start") {
            Some(start) => start.flags.extend(loose_flags),
            None => found.push(Invocation { command: "(script without gatehouse start)".into(), flags: loose_flags }),
        }
    }
    found
}

/// Problems with the runs of the binary in `argv`, named after `place`.
pub(crate) fn check_argv(place: &str, argv: &[String], problems: &mut Vec<String>) -> Vec<Invocation> {
    let found = invocations(argv);
    for inv in &found {
        let Some(known) = cli().flags.get(&inv.command) else {
            problems.push(format!("{place}: flags {:?} outside any `gatehouse <command>`", inv.flags));
            continue;
        };
        for flag in &inv.flags {
            if !known.contains(flag) {
                problems.push(format!("{place}: `gatehouse {}` has no flag --{flag}", inv.command));
            }
        }
    }
    found
}

pub(crate) fn check_env_name(place: &str, name: &str, problems: &mut Vec<String>) {
    if name.starts_with("GATEHOUSE_") && !cli().start_env.contains(name) {
        problems.push(format!("{place}: {name} is not a `gatehouse start` variable"));
    }
}

pub(crate) fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// The binary's help, and the checker itself.

#[test]
pub(crate) fn help_is_read_as_expected() {
    let cli = cli();
    let start = &cli.flags["start"];
    for flag in ["config", "bind-addr", "advertise-addr", "join", "data-dir", "cluster-secret-file", "leave-on-terminate", "admin-token"] {
        assert!(start.contains(flag), "start --help should list --{flag}: {start:?}");
    }
    for var in ["GATEHOUSE_JOIN", "GATEHOUSE_CLUSTER_SECRET", "GATEHOUSE_DATA_DIR"] {
        assert!(cli.start_env.contains(var), "start --help should list {var}");
    }
    assert!(cli.flags["status"].contains("admin"));
    assert!(cli.any_env.contains("GATEHOUSE_ADMIN"));
}

#[test]
pub(crate) fn the_checker_catches_a_misspelled_flag_or_variable() {
    let argv: Vec<String> = ["gatehouse", "start", "--advertize-addr", "node1", "--join=node2"].map(String::from).to_vec();
    let mut problems = Vec::new();
    let found = check_argv("example", &argv, &mut problems);
    assert_eq!(found, vec![Invocation { command: "start".into(), flags: vec!["advertize-addr".into(), "join".into()] }]);
    assert_eq!(problems, vec!["example: `gatehouse start` has no flag --advertize-addr".to_string()]);

    let script = "set -eu\nseeds=\"$seeds --jion $(dns x)\"  # a comment with --nonsense\nexec gatehouse start --leave-on-terminate $seeds; gatehouse status --json\n";
    let argv: Vec<String> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let mut problems = Vec::new();
    let found = check_argv("script", &argv, &mut problems);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(problems, vec!["script: `gatehouse start` has no flag --jion".to_string()]);

    let mut problems = Vec::new();
    check_env_name("env", "GATEHOUSE_CLUSTER_SECRETS", &mut problems);
    check_env_name("env", "GATEHOUSE_CLUSTER_SECRET", &mut problems);
    check_env_name("env", "POD_NAME", &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
}
