// The stencil passes of the kernel IR (see Kernel.h): operations that are not pointwise,
// one library routine per kind, shared by the CPU back ends.
#include <stdexcept>

#include "gyrus/kernel/Kernel.h"

namespace gyrus::kir {

void runStencil(const Stencil& s, float*, const ir::Shape3&, const std::vector<float>&) {
  // No lowering emits a stencil yet: the operations that need them (blur, ghosting,
  // ringing, low resolution) arrive with their routines.
  throw std::logic_error("kernel stencil '" + s.origin + "': no routine for this kind");
}

}  // namespace gyrus::kir
