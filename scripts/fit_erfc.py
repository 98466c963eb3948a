"""Fits the polynomial g of vene-kernels' erfc: erfc(z) = t * exp(-z^2 + g(t)), t = 1/(1 + z/2),
for z in [0, inf) (t in (0, 1]), by weighted least squares on Chebyshev nodes, with mpmath
as the reference. Prints the coefficients (lowest degree first) and the worst error of g
(= the relative error of erfc). Usage: python scripts/fit_erfc.py [degree]"""
import sys
import mpmath as mp
import numpy as np

mp.mp.dps = 40
deg = int(sys.argv[1]) if len(sys.argv) > 1 else 9
lo, hi = 1e-4, 1.0
n = 2000
k = np.arange(n)
ts = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)
def g_of(t):
    z = 2 * (1 / mp.mpf(t) - 1)
    return float(mp.log(mp.erfc(z)) + z * z - mp.log(t))
gs = np.array([g_of(t) for t in ts])
# Fit in the variable s = t (monomials), with a Chebyshev-basis solve for conditioning.
V = np.polynomial.chebyshev.chebvander(2 * (ts - lo) / (hi - lo) - 1, deg)
c, *_ = np.linalg.lstsq(V, gs, rcond=None)
# Convert to monomials in t.
cheb = np.polynomial.Chebyshev(c, domain=[lo, hi])
poly = cheb.convert(kind=np.polynomial.Polynomial)
coef = poly.coef
# Round to f32 and check the error of the f32 coefficients evaluated in f64.
c32 = coef.astype(np.float32).astype(np.float64)
tt = np.linspace(lo, hi, 20001)
ref = np.array([g_of(t) for t in tt[::20]])
approx = np.polynomial.polynomial.polyval(tt[::20], c32)
print("max |g error| =", np.max(np.abs(approx - ref)))
for x in coef:
    print(repr(float(np.float32(x))))
