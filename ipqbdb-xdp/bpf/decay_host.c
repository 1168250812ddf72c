/* SPDX-License-Identifier: GPL-3.0-or-later OR MIT */
/* The XDP program's decay, built for the host so the tests can compare it with ipqbdb-core's model. */
#include "decay.h"

unsigned int ipqbdb_decayed_host(unsigned int p, unsigned int decay, long long t0, long long now)
{
    return ipqbdb_decayed(p, decay, t0, now);
}
