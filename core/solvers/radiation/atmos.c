/* Gases and dry-air columns shared by the radiation code (rad_atmos.h). */
#include "mimic/rad_atmos.h"

#include <string.h>

/* In the enum's order; the names are RRTMGP's gas names. */
static const char *const gas_names[MIMIC_NGAS] = {
    "h2o",   "co2",    "o3",      "ch4",    "n2o",   "co",   "o2",      "n2",  "ccl4",
    "cfc11", "cfc12",  "hcfc22",  "hfc143a", "hfc125", "hfc23", "hfc32", "hfc134a", "cf4",
};

const char *mimic_rad_gas_name(mimic_rad_gas g)
{
    return (int)g >= 0 && (int)g < MIMIC_NGAS ? gas_names[g] : NULL;
}

int mimic_rad_gas_parse(const char *name)
{
    if (!name)
        return -1;
    for (int g = 0; g < MIMIC_NGAS; g++)
        if (strcmp(name, gas_names[g]) == 0)
            return g;
    return -1;
}

double mimic_rad_col_dry(double p_top, double p_bottom, double h2o)
{
    /* Mass of the moist column per mole of dry air: m_dry + m_h2o * h2o, so
     * dp / g over it counts dry molecules only. 1e-4: per m^2 -> per cm^2. */
    double m_air = MIMIC_RAD_M_DRY + MIMIC_RAD_M_H2O * h2o;
    return (p_bottom - p_top) / (MIMIC_RAD_G * m_air) * MIMIC_RAD_AVOGADRO * 1e-4;
}
