//! A rule costs no allocation per request: parsing the query, evaluating it
//! against a token's facts (kept with the cached verification), and writing
//! the 403 headers into the response buffer, all under a counting global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use jwtgate::rules::{evaluate, OwnedFacts, RuleSet, Verdict};
use serde_json::json;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn parsing_and_evaluating_rules_allocates_nothing() {
    let v1 = OwnedFacts::from_payload(
        json!({"sub": "u", "org_id": "org_1", "org_role": "org:admin",
               "org_permissions": ["org:billing:manage"], "fea": "o:teams", "pla": "u:pro",
               "fva": [3, 30]})
        .to_string()
        .as_bytes(),
    );
    let v2 = OwnedFacts::from_payload(
        json!({"sub": "u", "v": 2, "fea": "o:dashboard,o:teams",
               "o": {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": "3,2"},
               "fva": [3, 30]})
        .to_string()
        .as_bytes(),
    );
    let queries = [
        "",
        "optional=1",
        "role=org:admin",
        "role=org%3Amember",
        "permission=org:billing:manage&org=required",
        "permission=org:teams:read&feature=o:teams&plan=pro",
        "reverify=strict",
        "reverify=first_factor:10&role=admin",
        "reverify=multi_factor:60",
        "feature=user:nothing",
        "role=", // an operator error is no allocation either
    ];
    let mut out = String::with_capacity(1024);
    let before = allocations();
    let mut outcomes = [0usize; 3];
    for _ in 0..100 {
        for query in queries {
            for facts in [&v1.facts(), &v2.facts()] {
                out.clear();
                match RuleSet::parse(black_box(query)) {
                    Ok(rules) => match rules.evaluate(facts) {
                        Verdict::Allow => outcomes[0] += 1,
                        Verdict::Forbidden(forbidden) => {
                            forbidden.write_headers(&mut out);
                            outcomes[1] += 1;
                        }
                    },
                    Err(_) => outcomes[2] += 1,
                }
                black_box(&out);
                // The one-pass path for a valid token.
                if let Ok(Verdict::Forbidden(forbidden)) = evaluate(black_box(query), facts) {
                    forbidden.write_headers(&mut out);
                }
                black_box(&out);
            }
        }
    }
    assert_eq!(allocations() - before, 0, "rules allocated");
    assert!(outcomes.iter().all(|n| *n > 0), "{outcomes:?}");
}
