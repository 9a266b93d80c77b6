// `gyrus synth` inside the I/O module: the synthetic clinic (runtime/src/Clinic.h)
// written as NIfTI in the FOMO60K / FOMO25 layouts (docs/data.md).
#pragma once

#include "gyrus/io/IoModule.h"

namespace gyrus::io {

/// Validates the request, creates `request.out` and writes every subject (in parallel),
/// then sites.tsv and, last, README.txt. Every file is written to a temporary name and
/// renamed, so a reader never sees half a file. Never throws.
IoResult writeClinic(const SynthRequest& request, SynthSummary& summary);

}  // namespace gyrus::io
