//! Process plumbing shared by the ipqbdb programs: what happens between `exec` and the program's own
//! work. Kept out of `ipqbdb-core`, which stays a pure model.
