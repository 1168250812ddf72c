/* SPDX-License-Identifier: GPL-3.0-or-later OR MIT */
/* A program the kernel's verifier must refuse (it reads the packet without checking its bounds),
 * for the test that the refusal reaches the operator as one line naming the program and the
 * verifier's reason (tests/verifier.rs). Never loaded by ibd-xdp. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int ipqbdb_refused(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;

    return data[0] ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
