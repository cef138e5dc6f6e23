//! The pipeline's settings as flags: one global flag per entry of `zofhook_core::config::SETTINGS`
//! (the parameter in kebab case, its `ZOFHOOK_*` variable), so the CLI cannot drift from config.rs.

use clap::{Arg, ArgMatches, Command};
use zofhook_core::config::{Config, SETTINGS};

pub fn with_setting_args(mut command: Command) -> Command {
    for setting in SETTINGS {
        let mut help = format!("{} Accepts {}.", setting.help, setting.accepts());
        if !setting.default.is_empty() {
            help.push_str(&format!(" [default: {}]", setting.default));
        }
        command = command.arg(
            Arg::new(setting.env())
                .long(setting.flag())
                .env(setting.env())
                .value_name(setting.param)
                .global(true)
                .help_heading("Settings")
                .help(help),
        );
    }
    command
}

/// The settings given as flags or variables; a bad value is an error naming the setting.
pub fn config(matches: &ArgMatches) -> anyhow::Result<Config> {
    Ok(Config::from_lookup(|env| {
        matches.get_one::<String>(env).cloned()
    })?)
}
