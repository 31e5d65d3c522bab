//! The command line with TransformerLens 4.x names: `hooks` lists each slot once with its
//! aliases, and `run --names` matches aliases (the file keeps the names asked for).

mod common;

use common::{fixtures, hooklens, load_reference, max_abs_diff, read_tensors, temp_dir};
use hooklens::Tensor;

#[test]
fn hooks_lists_each_slot_once_with_its_aliases() {
    let dir = fixtures().join("llama_gqa");
    let (ok, stdout, stderr) = hooklens(&["--model", dir.to_str().unwrap(), "hooks"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let line = |start: &str| {
        let hits: Vec<&&str> = lines.iter().filter(|l| l.starts_with(start)).collect();
        assert_eq!(hits.len(), 1, "{start}: {hits:?}");
        hits[0].to_string()
    };
    let resid_pre = line("blocks.0.hook_resid_pre ");
    assert!(
        resid_pre.ends_with("aliases: blocks.0.hook_in, blocks.0.ln1.hook_in"),
        "{resid_pre}"
    );
    assert!(line("blocks.1.mlp.hook_pre ").ends_with("aliases: blocks.1.mlp.gate.hook_out"));
    assert!(line("blocks.1.mlp.hook_pre_linear ").ends_with("aliases: blocks.1.mlp.in.hook_out"));
    let q_input = line("blocks.0.hook_q_input ");
    assert!(
        q_input.contains("[batch, pos, 6, 48]  (opt-in)"),
        "{q_input}"
    );
    assert!(line("blocks.0.hook_k_input ").contains("[batch, pos, 2, 48]"));
    assert!(line("hook_unembed ").ends_with("(opt-in)  aliases: unembed.hook_out"));
    // No alias is listed as a slot of its own, and GQA has no hook_attn_in.
    for l in &lines {
        let name = l.split_whitespace().next().unwrap();
        assert!(
            !name.ends_with(".hook_out") && !name.ends_with(".hook_in"),
            "{l}"
        );
        assert!(!name.ends_with("hook_attn_in"), "{l}");
    }
}

#[test]
fn run_names_match_aliases() {
    let dir = fixtures().join("gpt2_tiny");
    let reference = load_reference(&dir);
    let ids: Vec<String> = reference.tokens.row(0).iter().map(u32::to_string).collect();
    let out_dir = temp_dir("cli-alias-cache");
    let cache = out_dir.join("acts.safetensors");
    let (ok, stdout, stderr) = hooklens(&[
        "--model",
        dir.to_str().unwrap(),
        "run",
        "--tokens",
        &ids.join(","),
        "--cache",
        cache.to_str().unwrap(),
        "--names",
        r"^blocks\.1\.hook_out$|attn\.o\.hook_in|^blocks\.0\.hook_resid_pre$",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let tensors = read_tensors(&cache);
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "attention_mask",
            "blocks.0.attn.o.hook_in",
            "blocks.0.hook_resid_pre",
            "blocks.1.attn.o.hook_in",
            "blocks.1.hook_out",
            "tokens",
        ]
    );
    fn tl2(alias: &str) -> &str {
        match alias {
            "blocks.0.attn.o.hook_in" => "blocks.0.attn.hook_z",
            "blocks.1.attn.o.hook_in" => "blocks.1.attn.hook_z",
            "blocks.1.hook_out" => "blocks.1.hook_resid_post",
            other => other,
        }
    }
    for (name, ours) in &tensors {
        if name == "tokens" || name == "attention_mask" {
            continue; // the cache format's int32 tensors
        }
        // The CLI runs the first row only.
        let want = reference.tensor(tl2(name));
        let per_row = want.data.len() / want.shape[0];
        let mut shape = want.shape.clone();
        shape[0] = 1;
        let want = Tensor::new(want.data[..per_row].to_vec(), shape).unwrap();
        let d = max_abs_diff(ours, &want);
        assert!(d <= 1e-4, "{name}: {d}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
