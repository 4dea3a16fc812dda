use super::*;
use crate::hf::config::ModelType;

fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-bert")
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&tiny_bert(), ModelType::Bert).unwrap()
}

fn corpus_file(dir: &Path, name: &str, lines: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..lines {
        if i % 7 == 3 {
            text.push_str("   \n"); // skipped: empty
        }
        text.push_str(&format!("sentence number {i} about the cache of tokens\n"));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn all_ids(t: &Tokens) -> Vec<Vec<u32>> {
    (0..t.n_texts).map(|i| t.text(i).to_vec()).collect()
}

#[test]
fn a_cold_entry_is_written_mapped_and_equal_to_tokenizing_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "wiki.txt", 3000);
    let tok = tokenizer();
    let cache = d.path().join("cache");
    let (mem, src) = load_or_build(None, std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
    assert_eq!(src, Source::Memory { reason: None });
    assert!(!mem.is_mapped());
    let (cold, src) =
        load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
    assert!(
        matches!(src, Source::Built { damaged: None, .. }),
        "{src:?}"
    );
    assert!(cold.is_mapped());
    let (warm, src) =
        load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
    assert!(matches!(src, Source::Hit { .. }), "{src:?}");
    assert_eq!(all_ids(&mem), all_ids(&cold));
    assert_eq!(all_ids(&mem), all_ids(&warm));
    assert_eq!(warm.len(), 3000);
    assert_eq!(warm.info.skipped_empty, mem.info.skipped_empty);
    assert_eq!(warm.info.skipped(), 3000usize.div_ceil(7));
    assert_eq!(warm.n_tokens, mem.n_tokens);
    // Specials and truncation as the tokenizer gives them one sentence at a time.
    let one = tok
        .tokenize(&["sentence number 5 about the cache of tokens"], 16)
        .unwrap();
    let want: Vec<u32> = one[0].ids.iter().map(|&i| i as u32).collect();
    assert_eq!(warm.text(5), &want[..]);
    assert!(warm.text(5).len() <= 16);
    // Nothing but the entry and its lock is left in the folder.
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn the_key_follows_content_format_tokenizer_and_max_len_not_the_path() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "a.txt", 50);
    let tok = tokenizer();
    let k = |files: &[PathBuf], format: &str, max_len| {
        key(files, format, &tok, max_len).unwrap().digest
    };
    let base = k(std::slice::from_ref(&f), "auto", 32);
    assert_eq!(base.len(), 32);
    // The same content elsewhere: the same entry.
    let sub = d.path().join("elsewhere");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(&f, sub.join("a.txt")).unwrap();
    assert_eq!(k(&[sub.join("a.txt")], "auto", 32), base);
    assert_ne!(k(std::slice::from_ref(&f), "auto", 33), base);
    assert_ne!(k(&[f.clone(), f.clone()], "auto", 32), base);
    // One byte changed, same size and name: another entry.
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    assert_ne!(k(std::slice::from_ref(&f), "auto", 32), base);
    // Another tokenizer (here: cased instead of uncased).
    let cased = d.path().join("cased");
    std::fs::create_dir(&cased).unwrap();
    std::fs::copy(tiny_bert().join("vocab.txt"), cased.join("vocab.txt")).unwrap();
    std::fs::write(
        cased.join("tokenizer_config.json"),
        r#"{"do_lower_case": false}"#,
    )
    .unwrap();
    let tok2 = Tokenizer::from_dir(&cased, ModelType::Bert).unwrap();
    assert_ne!(tok2.fingerprint().unwrap(), tok.fingerprint().unwrap());
    assert_eq!(
        tokenizer().fingerprint().unwrap(),
        tok.fingerprint().unwrap(),
        "the fingerprint is stable across loads"
    );
}

#[test]
fn a_damaged_or_truncated_entry_is_detected_reported_and_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "wiki.txt", 500);
    let tok = tokenizer();
    let cache = d.path().join("cache");
    let (good, src) =
        load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
    let Source::Built { path, .. } = src else {
        panic!("{src:?}")
    };
    let want = all_ids(&good);
    drop(good);
    let bytes = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            bytes[..bytes.len() - 100].to_vec(),
            "truncated",
        ),
        ("short", bytes[..10].to_vec(), "truncated"),
        (
            "flipped id",
            {
                let mut b = bytes.clone();
                b[HEADER + 40] ^= 0x10;
                b
            },
            "checksum",
        ),
        (
            "flipped header",
            {
                let mut b = bytes.clone();
                b[20] ^= 1;
                b
            },
            "header checksum",
        ),
        (
            "other version",
            {
                let mut b = bytes.clone();
                b[8] = 99;
                b
            },
            "layout version 99",
        ),
    ];
    for (what, damaged, expect) in cases {
        std::fs::write(&path, &damaged).unwrap();
        let e = open(&path).unwrap_err().to_string();
        assert!(e.contains(expect), "{what}: {e}");
        let st = entries(&cache, false).unwrap();
        let full = entries(&cache, true).unwrap();
        assert!(
            full.iter().any(|x| x.state.starts_with("damaged")),
            "{what}: {full:?}"
        );
        if what != "flipped id" {
            // Without --verify only the header and the length are checked.
            assert!(st.iter().any(|x| x.state.starts_with("damaged")), "{what}");
        }
        let (again, src) =
            load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
        match &src {
            Source::Built {
                damaged: Some(why), ..
            } => assert!(why.contains(expect), "{what}: {why}"),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(all_ids(&again), want, "{what}");
        assert!(open(&path).unwrap().is_some());
    }
}

#[test]
fn concurrent_builders_build_once_and_never_read_a_partial_file() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "wiki.txt", 4000);
    let tok = tokenizer();
    let cache = d.path().join("cache");
    let sources: Vec<Source> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let (t, src) =
                        load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16)
                            .unwrap();
                    assert_eq!(t.len(), 4000);
                    src
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let built = sources
        .iter()
        .filter(|s| matches!(s, Source::Built { .. }))
        .count();
    assert_eq!(built, 1, "{sources:?}");
    assert!(sources.iter().all(|s| !matches!(s, Source::Memory { .. })));
    let left = entries(&cache, true).unwrap();
    assert!(
        left.iter().all(|e| e.state == "ok" || e.state == "lock"),
        "{left:?}"
    );
}

#[test]
fn status_lists_our_files_and_clear_removes_only_them() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "wiki.txt", 100);
    let cache = d.path().join("cache");
    let tok = tokenizer();
    let (t, _) = load_or_build(Some(&cache), std::slice::from_ref(&f), "auto", &tok, 16).unwrap();
    let digest = t.info.key.clone();
    drop(t);
    std::fs::write(cache.join(format!("{digest}.tok.77.5.tmp")), b"partial").unwrap();
    std::fs::write(cache.join("notes.txt"), b"mine").unwrap();
    let es = entries(&cache, true).unwrap();
    let states: Vec<&str> = es.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, vec!["lock", "ok", "partial"], "{es:?}");
    let info = es[1].info.as_ref().unwrap();
    assert_eq!(info.examples, 100);
    assert_eq!(info.max_len, 16);
    assert_eq!(info.files[0].format, "lines");
    assert_eq!(info.files[0].bytes, std::fs::metadata(&f).unwrap().len());
    assert!(
        info.tokenizer_source.ends_with("vocab.txt")
            || info.tokenizer_source.ends_with("tiny-bert")
    );
    let (n, bytes) = clear(&cache).unwrap();
    assert_eq!(n, 3);
    assert!(bytes > 0);
    assert!(
        cache.join("notes.txt").is_file(),
        "clear leaves other files alone"
    );
    assert!(entries(&cache, false).unwrap().is_empty());
    // A missing folder is an empty cache.
    assert!(entries(&d.path().join("none"), false).unwrap().is_empty());
}

#[test]
fn triplets_keep_three_texts_per_example() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nli.csv");
    let mut text = String::from("sent0,sent1,hard_neg\n");
    for i in 0..40 {
        text.push_str(&format!(
            "a premise {i},\"an entailment, {i}\",a contradiction {i}\n"
        ));
    }
    std::fs::write(&p, text).unwrap();
    let tok = tokenizer();
    let (t, _) = load_or_build(
        Some(&d.path().join("c")),
        std::slice::from_ref(&p),
        "auto",
        &tok,
        12,
    )
    .unwrap();
    assert!(t.is_mapped());
    assert_eq!(t.per_example, 3);
    assert_eq!(t.len(), 40);
    assert!(t.info.supervised);
    let ex: Vec<Vec<u32>> = t.example(39).map(|s| s.to_vec()).collect();
    let want = tok
        .ids(
            &["a premise 39", "an entailment, 39", "a contradiction 39"],
            12,
        )
        .unwrap();
    assert_eq!(ex, want);
}

#[test]
fn an_unwritable_cache_falls_back_to_memory_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let f = corpus_file(d.path(), "wiki.txt", 20);
    let blocker = d.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let (t, src) = load_or_build(
        Some(&blocker.join("tokens")),
        &[f],
        "auto",
        &tokenizer(),
        16,
    )
    .unwrap();
    assert_eq!(t.len(), 20);
    match src {
        Source::Memory { reason: Some(r) } => assert!(r.contains("cannot create"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cache_folder_follows_the_environment() {
    // One test touches the variable, so tests running in parallel do not race on it.
    let r = Path::new("/results");
    std::env::remove_var(ENV);
    assert_eq!(dir_for(r), Some(PathBuf::from("/results/cache/tokens")));
    std::env::set_var(ENV, "/scratch/tok");
    assert_eq!(dir_for(r), Some(PathBuf::from("/scratch/tok")));
    std::env::set_var(ENV, "off");
    assert_eq!(dir_for(r), None);
    std::env::remove_var(ENV);
}

#[test]
fn a_saved_tokenizer_has_the_fingerprint_of_the_one_it_was_saved_from() {
    // A resumed run loads its tokenizer from the checkpoint: it must find the same entries.
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    tok.save(&tiny_bert(), d.path(), 512).unwrap();
    let again = Tokenizer::from_dir(d.path(), ModelType::Bert).unwrap();
    assert_eq!(again.fingerprint().unwrap(), tok.fingerprint().unwrap());
}
