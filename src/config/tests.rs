//! One test per validation rule: each asserts the path, the problem and that a fix is offered.

use super::*;

const BASE: &str = r#"
languages = ["en", "ru"]
default_profile = "guest"
[commands.start]
descriptions = { en = "Start" }
[commands.help]
descriptions = { en = "Help" }
[commands.stats]
descriptions = { en = "Stats" }
[profiles.guest]
include = ["start", "help"]
[profiles.admin]
extends = ["guest"]
include = ["stats"]
[[scopes]]
scope = "default"
profile = "guest"
"#;

fn load(text: &str) -> Result<Loaded, ConfigErrors> {
    Config::parse(text, Format::Toml, "bot.toml")
}

/// All errors of a config that must fail.
fn errors(text: &str) -> Vec<Diagnostic> {
    match load(text) {
        Ok(_) => panic!("config should be rejected:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts exactly one error sits at `path` and its message contains `needle`.
fn assert_error(errors: &[Diagnostic], path: &str, needle: &str) {
    let at: Vec<&Diagnostic> = errors.iter().filter(|d| d.path == path).collect();
    assert_eq!(at.len(), 1, "expected one error at {path}, got {errors:#?}");
    let d = at[0];
    assert!(
        d.message.contains(needle),
        "{path}: `{}` lacks `{needle}`",
        d.message
    );
    assert_eq!(d.file, "bot.toml");
    assert!(!d.fix.is_empty(), "{path}: no fix offered");
    let line = d.to_string();
    assert!(
        line.starts_with("bot.toml: ") && line.contains(path),
        "{line}"
    );
}

#[test]
fn base_config_is_valid_and_flattened() {
    let loaded = load(BASE).unwrap();
    let c = loaded.config;
    assert_eq!(c.profiles["admin"].commands, ["start", "help", "stats"]);
    assert_eq!(c.fallback_language.as_str(), "en");
    assert_eq!(c.i18n_key_prefix, "cmd");
    assert_eq!(c.menu_button, MenuButton::Commands);
    assert_eq!(c.scopes[0].languages.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../examples/shop.toml");
    let loaded = load(text).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.profiles["admin"].commands,
        [
            "start",
            "help",
            "catalog",
            "cart",
            "orders",
            "profile",
            "deals",
            "stats",
            "broadcast",
            "ban"
        ]
    );
}

#[test]
fn unknown_command_in_profile() {
    let e = errors(&BASE.replace(
        r#"include = ["stats"]"#,
        r#"include = ["stats", "help", "stat"]"#,
    ));
    assert_error(&e, "profiles.admin.include[2]", "unknown command `stat`");
    assert!(e[0].fix.contains("did you mean `stats`"), "{}", e[0].fix);
}

#[test]
fn unknown_command_in_exclude() {
    let e = errors(&format!("{BASE}\n[profiles.x]\nexclude = [\"nope\"]\n"));
    assert_error(&e, "profiles.x.exclude[0]", "unknown command `nope`");
}

#[test]
fn unknown_profile_in_scope_and_default() {
    let e = errors(
        &BASE
            .replace(
                r#"default_profile = "guest""#,
                r#"default_profile = "nobody""#,
            )
            .replace("profile = \"guest\"\n", "profile = \"gust\"\n"),
    );
    assert_error(&e, "scopes[0].profile", "unknown profile `gust`");
    assert_error(&e, "default_profile", "unknown profile `nobody`");
    assert!(e.iter().any(|d| d.fix.contains("did you mean `guest`")));
}

#[test]
fn unknown_parent_in_extends() {
    let e = errors(&BASE.replace(r#"extends = ["guest"]"#, r#"extends = ["guests"]"#));
    assert_error(&e, "profiles.admin.extends[0]", "unknown profile `guests`");
}

#[test]
fn invalid_command_names_are_never_renamed() {
    let e = errors(&format!(
        "{BASE}\n[commands.MyOrders]\ndescriptions = {{ en = \"x\" }}\n[commands.{}]\ndescriptions = {{ en = \"x\" }}\n",
        "a".repeat(33)
    ));
    assert_error(&e, "commands.MyOrders", "contains `M`");
    assert!(e.iter().any(|d| d.fix.contains("`myorders`")));
    assert_error(&e, &format!("commands.{}", "a".repeat(33)), "at most 32");
    let e = errors(&format!(
        "{BASE}\n[commands.\"my-cmd\"]\n[commands.\"my cmd\"]\n"
    ));
    assert_error(&e, "commands.my-cmd", "contains `-`");
    assert_error(&e, "commands.\"my cmd\"", "contains ` `");
}

#[test]
fn empty_and_long_descriptions() {
    let e = errors(
        &BASE
            .replace(
                r#"descriptions = { en = "Start" }"#,
                r#"descriptions = { en = "" }"#,
            )
            .replace(
                r#"descriptions = { en = "Help" }"#,
                &format!(r#"descriptions = {{ en = "{}" }}"#, "x".repeat(257)),
            ),
    );
    assert_error(&e, "commands.start.descriptions.en", "empty");
    assert_error(&e, "commands.help.descriptions.en", "257 characters");
}

#[test]
fn profile_over_100_commands() {
    let mut text = BASE.to_string();
    let mut names = Vec::new();
    for i in 0..101 {
        text.push_str(&format!(
            "[commands.c{i}]\ndescriptions = {{ en = \"C{i}\" }}\n"
        ));
        names.push(format!("\"c{i}\""));
    }
    text.push_str(&format!(
        "[profiles.huge]\ninclude = [{}]\n",
        names.join(",")
    ));
    let e = errors(&text);
    assert_error(&e, "profiles.huge", "101 commands");
}

#[test]
fn scope_ids_missing_or_forbidden() {
    let text = format!(
        r#"{BASE}
[[scopes]]
scope = "chat"
profile = "guest"
[[scopes]]
scope = "chat_member"
chat_id = -100
profile = "guest"
[[scopes]]
scope = "all_private_chats"
chat_id = 5
user_id = 6
profile = "guest"
[[scopes]]
scope = "chat"
chat_id = "shopchannel"
profile = "guest"
"#
    );
    let e = errors(&text);
    assert_error(&e, "scopes[1].chat_id", "needs a `chat_id`");
    assert_error(&e, "scopes[2].user_id", "needs a `user_id`");
    assert_error(&e, "scopes[3].chat_id", "does not take a `chat_id`");
    assert_error(&e, "scopes[3].user_id", "does not take a `user_id`");
    assert_error(&e, "scopes[4].chat_id", "neither a number nor an @username");
}

#[test]
fn unknown_scope_type() {
    let e = errors(&format!(
        "{BASE}\n[[scopes]]\nscope = \"all_privat_chats\"\nprofile = \"guest\"\n"
    ));
    assert_error(
        &e,
        "scopes[1].scope",
        "unknown scope type `all_privat_chats`",
    );
    assert!(e[0].fix.contains("`all_private_chats`"));
}

#[test]
fn aiogram_aliases_are_accepted_with_a_warning() {
    let loaded = load(&format!(
        "{BASE}\n[[scopes]]\nscope = \"all_chat_admins\"\nprofile = \"admin\"\n[[scopes]]\nscope = \"chat_admins\"\nchat_id = -1\nprofile = \"admin\"\n"
    ))
    .unwrap();
    assert_eq!(
        loaded.config.scopes[1].scope,
        crate::scope::Scope::AllChatAdministrators
    );
    assert_eq!(loaded.warnings.len(), 2);
    assert_eq!(loaded.warnings[0].path, "scopes[1].scope");
    assert!(loaded.warnings[0].fix.contains("all_chat_administrators"));
}

#[test]
fn same_scope_and_language_twice() {
    let e = errors(&format!(
        "{BASE}\n[[scopes]]\nscope = \"default\"\nprofile = \"admin\"\nlanguages = [\"ru\"]\n"
    ));
    assert_error(&e, "scopes[1]", "already configured by scopes[0]");
    // Distinct chats are distinct scopes.
    load(&format!(
        "{BASE}\n[[scopes]]\nscope = \"chat\"\nchat_id = 1\nprofile = \"admin\"\n[[scopes]]\nscope = \"chat\"\nchat_id = 2\nprofile = \"admin\"\n"
    ))
    .unwrap();
}

#[test]
fn languages_must_be_two_letters() {
    let e = errors(&BASE.replace(
        r#"languages = ["en", "ru"]"#,
        r#"languages = ["en", "pt-br", "english"]"#,
    ));
    assert_error(&e, "languages[1]", "`pt-br` is not a two-letter");
    assert!(e.iter().any(|d| d.fix.contains("`pt`")));
    assert_error(&e, "languages[2]", "`english`");
    let e = errors(&format!(
        "{BASE}\n[[scopes]]\nscope = \"all_private_chats\"\nprofile = \"guest\"\nlanguages = [\"de\", \"r\"]\n"
    ));
    assert_error(&e, "scopes[1].languages[0]", "not one of `languages`");
    assert_error(&e, "scopes[1].languages[1]", "not a two-letter");
}

#[test]
fn fallback_language_must_be_configured() {
    let e = errors(&format!("fallback_language = \"de\"\n{BASE}"));
    assert_error(&e, "fallback_language", "not one of `languages`");
}

#[test]
fn extends_cycle_is_reported_once() {
    let text = format!(
        "{BASE}\n[profiles.a]\nextends = [\"b\"]\n[profiles.b]\nextends = [\"guest\", \"a\"]\n"
    );
    let e = errors(&text);
    let cycles: Vec<_> = e.iter().filter(|d| d.message.contains("cycle")).collect();
    assert_eq!(cycles.len(), 1, "{e:#?}");
    assert_eq!(cycles[0].path, "profiles.b.extends[1]");
    assert!(
        cycles[0].message.contains("a -> b -> a"),
        "{}",
        cycles[0].message
    );
    let e = errors(&format!("{BASE}\n[profiles.me]\nextends = [\"me\"]\n"));
    assert_error(&e, "profiles.me.extends[0]", "me -> me");
}

#[test]
fn unknown_keys_are_typos_with_hints() {
    let text = BASE
        .replace("default_profile", "default_profle")
        .replace(r#"include = ["stats"]"#, r#"inclde = ["stats"]"#)
        .replace(r#"scope = "default""#, "scope = \"default\"\nchatid = 1");
    let e = errors(&format!(
        "{text}\n[commands.x]\ndescription = {{ en = \"x\" }}\n"
    ));
    assert_error(&e, "default_profle", "unknown key");
    assert_error(&e, "profiles.admin.inclde", "unknown key `inclde`");
    assert_error(&e, "scopes[0].chatid", "unknown key");
    assert_error(&e, "commands.x.description", "unknown key");
    assert!(e.iter().any(|d| d.fix.contains("did you mean `include`")));
    assert!(e.iter().any(|d| d.fix.contains("did you mean `chat_id`")));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = BASE
        .replace(r#"include = ["stats"]"#, r#"include = ["nope"]"#)
        .replace(r#"profile = "guest""#, r#"profile = "nobody""#)
        .replace(
            r#"languages = ["en", "ru"]"#,
            r#"languages = ["en", "rus"]"#,
        );
    let e = errors(&text);
    assert!(e.len() >= 3, "{e:#?}");
}

#[test]
fn type_errors_name_the_path() {
    let e = errors(&BASE.replace(r#"include = ["stats"]"#, r#"include = "stats""#));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "profiles.admin.include");
    let e = errors("languages = [\"en\"\n");
    assert!(e[0].message.contains("line"), "{}", e[0].message);
}

#[test]
fn json_has_the_same_shape() {
    let json = r#"{
      "languages": ["en"], "default_profile": "guest",
      "commands": {"start": {"descriptions": {"en": "Start"}}},
      "profiles": {"guest": {"include": ["start", "stop"]}},
      "scopes": [{"scope": "default", "profile": "guest", "chat_id": 3}]
    }"#;
    let e = Config::parse(json, Format::Json, "bot.json").unwrap_err().0;
    assert!(
        e.iter()
            .any(|d| d.path == "profiles.guest.include[1]" && d.file == "bot.json")
    );
    assert!(e.iter().any(|d| d.path == "scopes[0].chat_id"));
}

#[test]
fn missing_default_profile_is_explained() {
    let e = errors(&BASE.replace(r#"default_profile = "guest""#, ""));
    assert_error(&e, "default_profile", "no default profile");
}

#[test]
fn empty_profile_warns() {
    let loaded = load(&format!("{BASE}\n[profiles.banned]\n")).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path == "profiles.banned" && w.message.contains("empty list"))
    );
}

#[test]
fn plugins_and_sandbox_settings() {
    let loaded = load(&format!(
        "resolver = \"tiered\"\ntranslators = [\"a\", \"b\"]\n{BASE}\n[plugins.tiered]\nlabel = \"vip\"\nlevel = 3\nids = [1, 2]\n[sandbox]\ntimeout_ms = 50\nmemory_mib = 32\nreuse_instances = false\n"
    ))
    .unwrap();
    let c = loaded.config;
    assert_eq!(c.resolver.as_deref(), Some("tiered"));
    assert_eq!(c.translators, ["a", "b"]);
    let settings = &c.plugin_settings["tiered"];
    assert_eq!(settings["label"], "vip");
    assert_eq!(settings["level"], "3");
    assert_eq!(settings["ids"], "[1,2]");
    assert_eq!(c.sandbox.timeout, std::time::Duration::from_millis(50));
    assert_eq!(c.sandbox.memory_bytes, 32 << 20);
    assert!(!c.sandbox.reuse_instances);
    assert_eq!(c.sandbox.max_output_bytes, 64 << 10, "defaults stay");
}

#[test]
fn one_plugin_may_raise_its_limits_up_to_the_hosts_maximum() {
    let c = load(&format!(
        "{BASE}\n[sandbox]\nmax_memory_mib = 128\nmax_timeout_ms = 500\n[plugins.py]\nmemory_mib = 96\ntimeout_ms = 200\nlabel = \"x\"\n"
    ))
    .unwrap()
    .config;
    assert_eq!(c.sandbox.max_memory_bytes, 128 << 20);
    assert_eq!(c.sandbox.max_timeout, std::time::Duration::from_millis(500));
    assert_eq!(c.sandbox.memory_bytes, 16 << 20, "the default stays");
    let py = &c.plugin_settings["py"];
    assert_eq!(
        (py["memory_mib"].as_str(), py["timeout_ms"].as_str()),
        ("96", "200")
    );

    let e = errors(&format!(
        "{BASE}\n[sandbox]\nmax_memory_mib = 64\nmemory_mib = 65\n[plugins.py]\nmemory_mib = 100\ntimeout_ms = \"fast\"\n"
    ));
    assert_error(&e, "sandbox.memory_mib", "over `max_memory_mib`");
    assert_error(&e, "plugins.py.memory_mib", "not a limit this host allows");
    assert_error(&e, "plugins.py.timeout_ms", "not a limit this host allows");
    assert!(
        e.iter()
            .any(|d| d.fix.contains("raise `[sandbox] max_memory_mib`")),
        "{e:?}"
    );
}

#[test]
fn sandbox_bounds_and_typos() {
    let e = errors(&format!(
        "{BASE}\n[sandbox]\ntimeout_ms = 0\nmemory_mib = 100000\ntimeout = 5\n"
    ));
    assert_error(&e, "sandbox.timeout_ms", "out of range");
    assert_error(&e, "sandbox.memory_mib", "out of range");
    assert_error(&e, "sandbox.timeout", "unknown key");
    assert!(
        e.iter()
            .any(|d| d.fix.contains("did you mean `timeout_ms`"))
    );
    let e = errors(&format!("resolver = \"\"\n{BASE}"));
    assert_error(&e, "resolver", "empty");
}

#[test]
fn state_backends_and_their_mistakes() {
    assert_eq!(load(BASE).unwrap().config.state, StateBackend::Memory);
    let redis = load(&format!(
        "{BASE}\n[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"shop\"\n"
    ))
    .unwrap();
    assert_eq!(
        redis.config.state,
        StateBackend::Redis {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: Some("shop".into())
        }
    );
    let file = load(&format!(
        "{BASE}\n[state]\nbackend = \"file\"\npath = \"bot.state\"\nurl = \"redis://x\"\n"
    ))
    .unwrap();
    assert_eq!(file.config.state, StateBackend::File("bot.state".into()));
    assert!(file.warnings.iter().any(|w| w.path == "state.url"));

    let e = errors(&format!("{BASE}\n[state]\nbackend = \"redis\"\n"));
    assert_error(&e, "state.url", "needs a url");
    let e = errors(&format!(
        "{BASE}\n[state]\nbackend = \"redis\"\nurl = \"http://x\"\n"
    ));
    assert_error(&e, "state.url", "not a Redis URL");
    let e = errors(&format!("{BASE}\n[state]\nbackend = \"sqlite\"\n"));
    assert_error(&e, "state.backend", "unknown backend");
    let e = errors(&format!(
        "{BASE}\n[state]\nbackend = \"file\"\npaht = \"x\"\n"
    ));
    assert_error(&e, "state.paht", "unknown key");
    assert_error(&e, "state.path", "needs a path");
}
