//! dlm.conf text: the parser returns a config or an error naming a line, never panics;
//! a config that parses renders to text that parses back to an equal config, and its
//! fence plans and dump_config never panic.
#![no_main]
use std::path::Path;

use hydra_dlm::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let file = Path::new("/fuzz/dlm.conf");
    let cfg = match Config::parse_bytes(file, data) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(
                matches!(e, hydra_dlm::Error::Config { line, .. } if line >= 1),
                "{e:?}"
            );
            let _ = e.to_string();
            return;
        }
    };
    let text = cfg.render();
    let again = Config::parse(file, &text)
        .unwrap_or_else(|e| panic!("the rendered config does not parse: {e}\n{text}"));
    assert_eq!(again, cfg, "render and parse changed the config:\n{text}");
    assert_eq!(
        cfg.dump_config().lines().count(),
        hydra_dlm::config::OPTIONS.len()
    );
    let nodes = cfg
        .devices
        .iter()
        .flat_map(|d| d.connects.iter().map(|c| c.node));
    for node in nodes.chain([1, u32::MAX]) {
        let plan = cfg.fence_plan(node);
        assert!(!plan.steps.is_empty() && plan.steps.iter().all(|s| !s.is_empty()));
        let _ = cfg.unfence_plan(node);
    }
});
