/* The per-layer feature vector of the neural gas optics (rad_nn.h): the
 * one definition both the training data (Lua, radiation.nn_features) and the
 * surrogate at run time use. Logs where the optics are multiplicative in the
 * amount over decades (p, h2o, o3, co2); linear, in ppm / ppb so the values
 * are O(1), where the gas is a minor absorber over a narrow range. */
#include "mimic/rad_nn.h"

#include <math.h>

#define VMR_FLOOR 1e-12

static const char *const feature_names[MIMIC_RAD_NN_NFEAT] = {
    "ln_p", "t", "ln_h2o", "ln_o3", "ln_co2", "ch4", "n2o", "co", "ccl4", "cfc11",
    "cfc12", "hcfc22", "hfc143a", "hfc125", "hfc23", "hfc32", "hfc134a", "cf4",
};

const char *mimic_rad_nn_feature_name(int i)
{
    return i >= 0 && i < MIMIC_RAD_NN_NFEAT ? feature_names[i] : NULL;
}

void mimic_rad_nn_features(const mimic_rad_layer *lay, int64_t nlay, double *x)
{
    for (int64_t l = 0; l < nlay; l++, x += MIMIC_RAD_NN_NFEAT) {
        const double *v = lay[l].vmr;
        x[0] = log(lay[l].p);
        x[1] = lay[l].t;
        x[2] = log(fmax(v[MIMIC_GAS_H2O], VMR_FLOOR));
        x[3] = log(fmax(v[MIMIC_GAS_O3], VMR_FLOOR));
        x[4] = log(fmax(v[MIMIC_GAS_CO2], VMR_FLOOR));
        x[5] = v[MIMIC_GAS_CH4] * 1e6;
        x[6] = v[MIMIC_GAS_N2O] * 1e6;
        x[7] = v[MIMIC_GAS_CO] * 1e6;
        for (int h = 0; h < MIMIC_KDIST_NHALO; h++)
            x[8 + h] = v[MIMIC_GAS_CCL4 + h] * 1e9;
    }
}
