// Precompiled header of the LibTorch translation units: the parts of the C++ frontend
// the runtime uses (not <torch/torch.h>, which pulls in far more).
#pragma once

#include <ATen/Parallel.h>
#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>
#include <torch/version.h>
