//! The README's configuration reference is kept equal to the settings: every key of config/default.toml
//! (which a unit test keeps equal to the built-in defaults) has a row with its default and environment
//! variable, and every variable in the table is one the settings loader accepts.

use std::collections::BTreeMap;
use std::path::Path;

use avatar_worker::settings::Settings;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("readable")
}

/// `key -> default` for every active key of config/default.toml; inline tables become `a.b.c` keys.
fn documented_defaults() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut section = String::new();
    for line in read("config/default.toml").lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        match value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
            Some(inline) => {
                for field in inline.split(',') {
                    let (name, value) = field.split_once('=').expect("name = value");
                    keys.insert(
                        format!("{section}.{key}.{}", name.trim()),
                        value.trim().to_string(),
                    );
                }
            }
            None => {
                keys.insert(
                    format!("{section}.{key}"),
                    value.trim_matches('"').to_string(),
                );
            }
        }
    }
    keys
}

struct Row {
    default: String,
    env: Option<String>,
}

/// The rows of the README's configuration reference table.
fn readme_rows() -> BTreeMap<String, Row> {
    let readme = read("README.md");
    let table = readme
        .split("### Configuration reference")
        .nth(1)
        .expect("a Configuration reference section");
    let cell = |c: &str| c.trim().trim_matches('`').to_string();
    table
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            let env = cell(cells[3]);
            (
                cell(cells[1]),
                Row {
                    default: cell(cells[2]),
                    env: env.starts_with("AVATAR_WORKER__").then_some(env),
                },
            )
        })
        .collect()
}

/// List keys that also take comma-separated values from the environment.
const ENV_LISTS: [&str; 6] = [
    "amqp.urls",
    "retry.delays_ms",
    "image.allow_hosts",
    "worker.reply_to_prefixes",
    "worker.download_hosts",
    "worker.download_allow_hosts",
];

fn env_name(key: &str) -> String {
    format!("AVATAR_WORKER__{}", key.replace('.', "__").to_uppercase())
}

#[test]
fn every_key_is_in_the_readme_with_its_default_and_variable() {
    let rows = readme_rows();
    let defaults = documented_defaults();
    assert!(defaults.len() > 30, "{defaults:?}");
    for (key, default) in &defaults {
        let row = rows
            .get(key)
            .unwrap_or_else(|| panic!("README configuration reference has no row for `{key}`"));
        assert_eq!(&row.default, default, "default of `{key}`");
        if default.starts_with('[') && !ENV_LISTS.contains(&key.as_str()) {
            assert!(row.env.is_none(), "`{key}` is a list: file only");
        } else {
            assert_eq!(row.env.as_deref(), Some(env_name(key).as_str()), "`{key}`");
        }
    }
}

#[test]
fn every_variable_in_the_readme_is_accepted() {
    let rows = readme_rows();
    let value = |row: &Row| match row.default.as_str() {
        "(unset)" => "probe-value".to_string(),
        "[]" if row.env.as_deref() == Some("AVATAR_WORKER__AMQP__URLS") => {
            "amqp://probe-1,amqp://probe-2".to_string()
        }
        "[]" => "probe-host".to_string(),
        list if list.starts_with('[') => list.trim_matches(['[', ']']).replace(' ', ""),
        default => default.to_string(),
    };
    for (key, row) in &rows {
        let Some(env) = &row.env else { continue };
        assert_eq!(env, &env_name(key), "`{key}`");
        // A password alone is refused (it needs its user), so the user is always given too.
        let mut vars = vec![(
            "AVATAR_WORKER__GATEWAY__USERNAME".to_string(),
            "probe".to_string(),
        )];
        // The fields of an inline table (`pacing.fetch.*`) are set together, as the README says.
        if let Some((parent, _)) = key.rsplit_once('.').filter(|(p, _)| p.contains('.')) {
            for (sibling, row) in rows.range(format!("{parent}.")..) {
                if !sibling.starts_with(&format!("{parent}.")) {
                    break;
                }
                vars.push((env_name(sibling), value(row)));
            }
        }
        vars.push((env.clone(), value(row)));
        let settings = Settings::load_from(None, vars).unwrap_or_else(|err| panic!("{env}: {err}"));
        // A misspelt variable would be rejected; an accepted one must leave the defaults valid.
        settings.validate().unwrap();
    }
    let misspelt = Settings::load_from(None, [("AVATAR_WORKER__LOG__LEVL".into(), "x".into())]);
    assert!(
        misspelt.is_err(),
        "unknown keys are refused, so the check above means something"
    );
}

/// The picture the README's update example sends is one the update pipeline takes.
#[test]
fn the_sample_photo_is_an_update_picture() {
    let readme = read("README.md");
    assert!(readme.contains("--image examples/photo.jpg"));
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/photo.jpg");
    let output = std::env::temp_dir().join(format!("readme-photo-{}.jpg", std::process::id()));
    let prepared =
        avatar_worker::image::normalize_file(&input, &output, &Settings::default().image)
            .expect("the sample photo normalizes");
    let _ = std::fs::remove_file(&output);
    assert_eq!((prepared.width, prepared.height), (640, 640));
}
