// Names of the configuration enums, shared by the control plane and the stats.
#include "nat_config.h"

namespace snatgw {

const char* policy_name(Policy p) {
    switch (p) {
        case Policy::Liberal: return "liberal";
        case Policy::Strict: return "strict";
        case Policy::RetransOk: return "retrans-ok";
    }
    return "unknown";
}

}  // namespace snatgw
