//! Property tests of the linkability statistics (`policy::linkage`): group
//! sizes against a brute-force count, the identity and constant masks, a
//! combination never raising k, the stricter resident-ID mask never lowering
//! it, and matching counts.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use creditgate_policy::linkage::{GroupStats, matching};
use creditgate_policy::masks::write_partial;
use proptest::prelude::*;

fn partial(value: &str, m: usize, n: usize) -> String {
    let mut out = String::new();
    write_partial(&mut out, value, m, n).expect("write to a String");
    out
}

/// Brute force: for each distinct raw value, how many distinct raw values
/// share its masked value.
fn brute(pairs: &[(u8, u8)]) -> GroupStats {
    let raws: BTreeSet<u8> = pairs.iter().map(|p| p.0).collect();
    let mask_of: BTreeMap<u8, u8> = pairs.iter().copied().collect();
    let sizes: Vec<usize> = raws.iter().map(|r| raws.iter().filter(|o| mask_of[*o] == mask_of[r]).count()).collect();
    let groups: BTreeSet<u8> = mask_of.values().copied().collect();
    GroupStats {
        values: raws.len(),
        groups: groups.len(),
        unique: sizes.iter().filter(|s| **s == 1).count(),
        k: sizes.iter().copied().min().unwrap_or(0),
    }
}

proptest! {
    #[test]
    fn group_sizes_match_a_brute_force_count(raws in proptest::collection::vec(any::<u8>(), 0..200), modulus in 1u8..40) {
        // A mask is a function of the raw value: here `raw % modulus`.
        let pairs: Vec<(u8, u8)> = raws.iter().map(|r| (*r, r % modulus)).collect();
        let stats = GroupStats::from_pairs(pairs.iter().copied());
        prop_assert_eq!(stats, brute(&pairs));
        prop_assert!(stats.unique <= stats.values && stats.groups <= stats.values);
        prop_assert!(stats.k * stats.groups <= stats.values);
        prop_assert!((0.0..=1.0).contains(&stats.unique_share()));
        prop_assert_eq!(stats.unique > 0, stats.values > 0 && stats.k == 1);
    }

    #[test]
    fn the_identity_mask_has_k_1_and_a_constant_mask_k_everyone(raws in proptest::collection::hash_set(any::<u32>(), 1..100)) {
        let identity = GroupStats::from_pairs(raws.iter().map(|r| (*r, *r)));
        prop_assert_eq!(identity, GroupStats { values: raws.len(), groups: raws.len(), unique: raws.len(), k: 1 });
        prop_assert!((identity.unique_share() - 1.0).abs() < 1e-12);
        let constant = GroupStats::from_pairs(raws.iter().map(|r| (*r, "*")));
        prop_assert_eq!(constant.k, raws.len());
        prop_assert_eq!(constant.groups, 1);
        prop_assert_eq!(constant.unique, usize::from(raws.len() == 1));
    }

    #[test]
    fn repeated_rows_count_once(raws in proptest::collection::vec(0u16..50, 1..100), repeat in 1usize..4) {
        let once = GroupStats::from_pairs(raws.iter().map(|r| (*r, r / 7)));
        let many = GroupStats::from_pairs(raws.iter().cycle().take(raws.len() * repeat).map(|r| (*r, r / 7)));
        prop_assert_eq!(once, many);
    }

    #[test]
    fn a_combination_never_raises_k(people in proptest::collection::vec(0u16..300, 1..150), salt in 1u16..97) {
        // Each person (raw first value) has one raw second value.
        let second = |a: u16| (a.wrapping_mul(salt)) % 300;
        let alone = GroupStats::from_pairs(people.iter().map(|a| (*a, a / 10)));
        let combined = GroupStats::from_pairs(people.iter().map(|a| ((*a, second(*a)), (a / 10, second(*a) / 10))));
        prop_assert_eq!(combined.values, alone.values);
        prop_assert!(combined.k <= alone.k);
        prop_assert!(combined.unique >= alone.unique);
        prop_assert!(combined.groups >= alone.groups);
    }

    #[test]
    fn the_strict_resident_id_mask_never_lowers_k(ids in proptest::collection::hash_set("[1-6][0-9]{16}[0-9X]", 1..300)) {
        let old = GroupStats::from_pairs(ids.iter().map(|id| (id.clone(), partial(id, 6, 4))));
        let strict = GroupStats::from_pairs(ids.iter().map(|id| (id.clone(), partial(id, 1, 2))));
        prop_assert!(strict.k >= old.k);
        prop_assert!(strict.unique <= old.unique);
        prop_assert!(strict.groups <= old.groups);
        // 1 + 2 characters of an 18-character ID: at most 6 × 110 groups here.
        prop_assert!(strict.groups <= 6 * 110);
    }

    #[test]
    fn matching_counts_common_values(a in proptest::collection::hash_set(0u16..500, 0..100), b in proptest::collection::hash_set(0u16..500, 0..100)) {
        let n = matching(&a, &b);
        prop_assert_eq!(n, matching(&b, &a));
        prop_assert_eq!(n, a.intersection(&b).count());
        prop_assert!(n <= a.len().min(b.len()));
        prop_assert_eq!(matching(&a, &a), a.len());
        prop_assert_eq!(matching(&a, &HashSet::new()), 0);
    }
}
