/* SPDX-License-Identifier: GPL-3.0-or-later OR MIT */
/* ipqbdb's verdict in the kernel: drops each packet of a banned source with the record's current
 * probability, decayed here from the stored P, t0 and decay, so verdicts stay right while ibd-xdp
 * is down. ibd-xdp keeps the maps in step with the database (src/sync.rs); the layouts below are
 * mirrored by src/maps.rs. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "decay.h"

#define P_MAX 0x7fffffffU

/* The store's key: IPv4 as IPv4-mapped IPv6, IPv6 masked to the database's prefix. */
struct ipqbdb_key {
    __u8 addr[16];
};

struct ipqbdb_entry {
    __u32 prob;  /* P at t0, 0..P_MAX */
    __u32 decay; /* seconds, half-life */
    __s64 t0;    /* ns on the boot clock (bpf_ktime_get_boot_ns) */
};

struct ipqbdb_counts {
    __u64 seen;
    __u64 dropped;
};

struct ipqbdb_conf {
    __u32 v6_prefix; /* 1..128; 0 until ibd-xdp set it: nothing is dropped before */
    __u32 pad;
    __s64 boot_offset; /* realtime - boottime, ns, as ibd-xdp converted t0 */
};

struct ipqbdb_white_key {
    __u32 prefixlen;
    __u8 addr[16];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1000000); /* set by ibd-xdp --max-entries */
    __type(key, struct ipqbdb_key);
    __type(value, struct ipqbdb_entry);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} ipqbdb_block SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 1000000); /* as ipqbdb_block */
    /* Allocated per source that sends, not per record: a preallocated per-CPU map costs
     * max_entries x possible CPUs x 16 bytes up front. */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ipqbdb_key);
    __type(value, struct ipqbdb_counts);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} ipqbdb_counts SEC(".maps");

/* Exact addresses never dropped (whitelist decay 0), as CIDR blocks over the 128-bit key. */
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 65536); /* set by ibd-xdp --max-white */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ipqbdb_white_key);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} ipqbdb_white SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ipqbdb_conf);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} ipqbdb_conf SEC(".maps");

static __always_inline void count(struct ipqbdb_key *key, int dropped)
{
    struct ipqbdb_counts *c = bpf_map_lookup_elem(&ipqbdb_counts, key);

    if (!c) {
        struct ipqbdb_counts first = { 1, dropped };

        if (bpf_map_update_elem(&ipqbdb_counts, key, &first, BPF_NOEXIST) == 0)
            return;
        /* Another CPU created it first (each CPU has its own slot in it): count in ours. */
        c = bpf_map_lookup_elem(&ipqbdb_counts, key);
        if (!c)
            return;
    }
    c->seen++;
    c->dropped += dropped;
}

SEC("xdp")
int ipqbdb_verdict(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct ipqbdb_white_key exact = { .prefixlen = 128 };
    struct ipqbdb_key key = {};
    struct ipqbdb_entry *e;
    struct ipqbdb_conf *conf;
    __u32 zero = 0, p, bits;

    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    conf = bpf_map_lookup_elem(&ipqbdb_conf, &zero);
    if (!conf || conf->v6_prefix == 0 || conf->v6_prefix > 128)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);

        if ((void *)(ip + 1) > end)
            return XDP_PASS;
        exact.addr[10] = 0xff;
        exact.addr[11] = 0xff;
        __builtin_memcpy(&exact.addr[12], &ip->saddr, 4);
        __builtin_memcpy(key.addr, exact.addr, 16);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);

        if ((void *)(ip6 + 1) > end)
            return XDP_PASS;
        __u64 w[2], hi_mask, lo_mask;

        __builtin_memcpy(exact.addr, &ip6->saddr, 16);
        __builtin_memcpy(w, exact.addr, 16);
        /* The prefix's mask as two big-endian words (prefix in 1..=128, checked above). */
        bits = conf->v6_prefix;
        hi_mask = bits >= 64 ? ~0ULL : ~0ULL << (64 - bits);
        lo_mask = bits >= 128 ? ~0ULL : bits <= 64 ? 0 : ~0ULL << (128 - bits);
        w[0] &= bpf_cpu_to_be64(hi_mask);
        w[1] &= bpf_cpu_to_be64(lo_mask);
        __builtin_memcpy(key.addr, w, 16);
    } else {
        return XDP_PASS;
    }

    e = bpf_map_lookup_elem(&ipqbdb_block, &key);
    if (!e)
        return XDP_PASS;
    if (bpf_map_lookup_elem(&ipqbdb_white, &exact)) {
        count(&key, 0);
        return XDP_PASS;
    }
    p = ipqbdb_decayed(e->prob, e->decay, e->t0, (long long)bpf_ktime_get_boot_ns());
    /* The model's draw: r uniform in 0..P_MAX, guilty iff r < P(t), so P_MAX always drops. */
    if (p && (__u32)(((__u64)bpf_get_prandom_u32() * P_MAX) >> 32) < p) {
        count(&key, 1);
        return XDP_DROP;
    }
    count(&key, 0);
    return XDP_PASS;
}

/* The kernel's name for this file's licence (MIT, or the GPL as the project): GPL-compatible. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
