-- Generative mappings (lua/mimic/generative.lua): the VAE's KL term against
-- Monte Carlo, the reparameterised sample, a VAE reproducing a 2-D Gaussian
-- mixture (from the prior and from the density information buffer), the
-- buffer's alpha = gamma = 0 case, a tiny GAN learning a 1-D Gaussian, a
-- conditional GAN, and the gradient penalty's gradient against finite
-- differences. Fixed seeds throughout.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local Gm = mimic.generative

local dt = "float64"

function test_kl_analytic_vs_monte_carlo()
  local g = mimic.Generator(1)
  local mu = mimic.tensor({ { 0.5, -1.0, 0.2 }, { 0, 0, 0 }, { 2.0, 0.3, -0.7 } }, dt)
  local logvar = mimic.tensor({ { -0.5, 0.3, 0.0 }, { 0, 0, 0 }, { 0.8, -1.2, 0.1 } }, dt)
  local kl = Gm.kl(mu, logvar):totable()
  lu.assertAlmostEquals(kl[2], 0, 1e-15)
  -- E_q[log q(z) - log p(z)] with z = mu + sigma eps
  local M = 200000
  for i = 1, 3 do
    local m, lv = mu[i]:reshape({ 1, 3 }), logvar[i]:reshape({ 1, 3 })
    local eps = g:randn({ M, 3 }, { dtype = dt })
    local z = m + (lv * 0.5):exp() * eps
    local logq = ((eps:square() + lv) * -0.5):sum(2)
    local logp = (z:square() * -0.5):sum(2)
    local d = logq - logp
    local est, se = d:mean():item(), d:std():item() / math.sqrt(M)
    lu.assertTrue(math.abs(est - kl[i]) < 4 * se + 1e-12,
      string.format("row %d: MC %.5f +- %.5f vs analytic %.5f", i, est, se, kl[i]))
  end
  lu.assertAlmostEquals(Gm.kl_mean(mu, logvar):item(), (kl[1] + kl[2] + kl[3]) / 3, 1e-14)
  -- reparameterised sample: z - mu = sigma * eps exactly, and its gradient reaches mu and logvar
  local mu2, lv2 = mu:clone():requires_grad_(), logvar:clone():requires_grad_()
  local z, eps = Gm.reparameterize(mu2, lv2, g)
  lu.assertTrue((z - mu - (logvar * 0.5):exp() * eps):abs():max():item() < 1e-15)
  z:sum():backward()
  lu.assertTrue((mu2.grad - 1):abs():max():item() == 0)
  lu.assertTrue((lv2.grad - (logvar * 0.5):exp() * eps * 0.5):abs():max():item() < 1e-15)
end

-- --- the 2-D Gaussian mixture -----------------------------------------------------------
local CENTRES = { { -2, 0 }, { 2, 0 }, { 0, 2.5 } }
local WEIGHTS = { 0.5, 0.3, 0.2 }
local SD = 0.3

local function mixture(n, g)
  local u = g:rand({ n }, { dtype = dt }):totable()
  local c = {}
  for i = 1, n do
    local k = u[i] < WEIGHTS[1] and 1 or (u[i] < WEIGHTS[1] + WEIGHTS[2] and 2 or 3)
    c[i] = CENTRES[k]
  end
  return mimic.tensor(c, dt) + g:randn({ n, 2 }, { dtype = dt }) * SD
end

-- Nearest-centre assignment: per component weight, mean, std per axis.
local function components(s)
  local st = s:totable()
  local out = {}
  for k = 1, 3 do out[k] = { n = 0, s = { 0, 0 }, ss = { 0, 0 } } end
  for _, p in ipairs(st) do
    local best, bd = 1, math.huge
    for k, c in ipairs(CENTRES) do
      local d = (p[1] - c[1]) ^ 2 + (p[2] - c[2]) ^ 2
      if d < bd then best, bd = k, d end
    end
    local o = out[best]
    o.n = o.n + 1
    for j = 1, 2 do o.s[j] = o.s[j] + p[j]; o.ss[j] = o.ss[j] + p[j] ^ 2 end
  end
  for _, o in ipairs(out) do
    o.w = o.n / #st
    o.mean = { o.s[1] / o.n, o.s[2] / o.n }
    o.std = { math.sqrt(o.ss[1] / o.n - o.mean[1] ^ 2), math.sqrt(o.ss[2] / o.n - o.mean[2] ^ 2) }
  end
  return out
end

local trained -- one VAE, trained once, shared by the tests below
local function vae_2d()
  if trained then return trained end
  local g = mimic.Generator(0)
  local x = mixture(2000, g)
  local function L(a, b) return nn.Linear(a, b, { dtype = dt, generator = g }) end
  local enc = nn.Sequential(L(2, 64), nn.Tanh(), L(64, 64), nn.Tanh())
  local dec = nn.Sequential(L(2, 64), nn.Tanh(), L(64, 64), nn.Tanh(), L(64, 2))
  local vae = Gm.VAE(enc, Gm.GaussianHead(64, 2, { dtype = dt, generator = g }), dec, { sigma = 0.1 })
  local h = vae:fit(x, { epochs = 120, batch = 128, lr = 3e-3, generator = g, verbose = false })
  trained = { vae = vae, x = x, g = g, history = h }
  return trained
end

function test_vae_reproduces_gaussian_mixture()
  local t = vae_2d()
  lu.assertTrue(t.history[#t.history].loss < t.history[1].loss)
  -- from the prior: the right modes, in the right proportions
  local s = t.vae:sample(20000, { generator = t.g })
  lu.assertEquals(s:size(), { 20000, 2 })
  for k, o in ipairs(components(s)) do
    lu.assertTrue(math.abs(o.w - WEIGHTS[k]) < 0.08, string.format("prior: weight %d %.3f", k, o.w))
    for j = 1, 2 do
      lu.assertTrue(math.abs(o.mean[j] - CENTRES[k][j]) < 0.4, string.format("prior: mean %d,%d %.3f", k, j, o.mean[j]))
    end
  end
  -- from the density information buffer: means, spreads and weights of the mixture
  t.vae:build_buffer(t.x)
  lu.assertEquals(t.vae.buffer_mu:size(), { 2000, 2 })
  local b = t.vae:sample_buffer(20000, { alpha = 1, gamma = 0, generator = t.g })
  for k, o in ipairs(components(b)) do
    lu.assertTrue(math.abs(o.w - WEIGHTS[k]) < 0.03, string.format("buffer: weight %d %.3f", k, o.w))
    for j = 1, 2 do
      lu.assertTrue(math.abs(o.mean[j] - CENTRES[k][j]) < 0.2,
        string.format("buffer: mean %d,%d %.3f", k, j, o.mean[j]))
      lu.assertTrue(math.abs(o.std[j] - SD) < 0.1, string.format("buffer: std %d,%d %.3f", k, j, o.std[j]))
    end
  end
end

function test_density_buffer_alpha_gamma_zero_is_decoder_of_mu()
  local t = vae_2d()
  t.vae:build_buffer(t.x)
  local y, idx, z = t.vae:sample_buffer(500, { alpha = 0, gamma = 0, generator = mimic.Generator(4) })
  local mu = t.vae.buffer_mu:index_select(1, idx)
  lu.assertEquals((z - mu):abs():max():item(), 0)
  local ref = mimic.no_grad(function() return t.vae.decoder(mu) end)
  lu.assertEquals((y - ref):abs():max():item(), 0)
  -- and the stored posterior is the encoder's
  local m1 = mimic.no_grad(function() return (t.vae:encode(t.x:narrow(1, 1, 5))) end)
  lu.assertTrue((m1 - t.vae.buffer_mu:narrow(1, 1, 5)):abs():max():item() < 1e-12) -- gemm blocking differs
  -- gamma > 0 spreads around decoder(mu): a different draw each call, same picks for the same seed
  local y1, i1 = t.vae:sample_buffer(50, { alpha = 0, gamma = 0.5, generator = mimic.Generator(4) })
  lu.assertEquals(i1:totable(), idx:narrow(1, 1, 50):totable())
  lu.assertTrue((y1 - y:narrow(1, 1, 50)):abs():max():item() > 1e-3)
  lu.assertFalse(pcall(Gm.VAE.sample_buffer, Gm.VAE(nn.Identity(), Gm.GaussianHead(2, 2), nn.Identity()), 3))
end

-- --- GANs ---------------------------------------------------------------------------------
local function mlp(nin, nout, g)
  return nn.Sequential(nn.Linear(nin, 32, { dtype = dt, generator = g }), nn.LeakyReLU(0.2),
    nn.Linear(32, 32, { dtype = dt, generator = g }), nn.LeakyReLU(0.2),
    nn.Linear(32, nout, { dtype = dt, generator = g }))
end

function test_gan_learns_1d_gaussian()
  local g = mimic.Generator(1)
  local x = g:randn({ 4000, 1 }, { dtype = dt }) * 0.5 + 1.5
  local G, D = mlp(4, 1, g), mlp(1, 1, g)
  local h = Gm.gan_train { G = G, D = D, data = x, latent = 4, steps = 2000, batch = 128, lr = 5e-4, generator = g,
    verbose = false }
  lu.assertEquals(#h.d_loss, 2000)
  local s = Gm.gan_sample(G, 10000, { latent = 4, generator = g })
  local m, sd = s:mean():item(), s:std():item()
  lu.assertTrue(math.abs(m - 1.5) < 0.15, "GAN mean " .. m)
  lu.assertTrue(math.abs(sd - 0.5) < 0.15, "GAN std " .. sd)
end

function test_conditional_gan_respects_condition()
  local g = mimic.Generator(1)
  local N = 4000
  local lab = mimic.cat({ mimic.zeros(N // 2, 1, dt), mimic.ones(N // 2, 1, dt) }, 1)
  local x = g:randn({ N, 1 }, { dtype = dt }) * 0.5 + lab * 4 - 2
  local G, D = mlp(5, 1, g), mlp(2, 1, g)
  Gm.gan_train { G = G, D = D, data = x, cond = lab, latent = 4, steps = 2000, batch = 128, lr = 5e-4,
    generator = g, verbose = false }
  for _, v in ipairs({ 0, 1 }) do
    local s = Gm.gan_sample(G, 5000, { latent = 4, cond = mimic.full({ 5000, 1 }, v, dt), generator = g })
    local m = s:mean():item()
    lu.assertTrue(math.abs(m - (4 * v - 2)) < 0.3, string.format("condition %d: mean %.3f", v, m))
    lu.assertTrue(s:std():item() < 1, "condition " .. v)
  end
end

-- The penalty's gradient in D's parameters (through the double backward)
-- against central differences of its value, same interpolation points.
function test_gradient_penalty_gradient_vs_finite_differences()
  local g = mimic.Generator(2)
  local D = nn.Sequential(nn.Linear(3, 5, { dtype = dt, generator = g }), nn.Tanh(),
    nn.Linear(5, 1, { dtype = dt, generator = g }))
  local real, fake = g:randn({ 6, 3 }, { dtype = dt }), g:randn({ 6, 3 }, { dtype = dt }) * 2
  local opt = mimic.optim.SGD(D:parameters(), { lr = 0 })
  local st = g:state()
  local function gp()
    g:set_state(st)
    return Gm.gradient_penalty(D, real, fake, { generator = g })
  end
  opt:zero_grad()
  local v = gp()
  opt:zero_grad() -- drop what the double backward left
  v:backward()
  local h = 1e-6
  local worst, checked = 0, 0
  local grads = {}
  for i, p in ipairs(D:parameters()) do grads[i] = p.grad:detach():clone():view({ -1 }) end
  for ip, p in ipairs(D:parameters()) do
    local flat, gflat = p:detach():view({ -1 }), grads[ip]
    for i = 1, flat:numel() do
      local x0 = flat[i]
      flat[i] = x0 + h
      local fp = gp():item()
      flat[i] = x0 - h
      local fm = gp():item()
      flat[i] = x0
      local fd = (fp - fm) / (2 * h)
      worst = math.max(worst, math.abs(fd - gflat[i]) / math.max(1, math.abs(fd)))
      checked = checked + 1
    end
  end
  lu.assertEquals(checked, 3 * 5 + 5 + 5 + 1)
  lu.assertTrue(worst < 1e-6, "gradient penalty gradient vs finite differences: " .. worst)
  lu.assertTrue(v:item() > 0)
  -- the training loop with the penalty (conditional, two critic steps) runs and records it
  local g2 = mimic.Generator(3)
  local Gn, Dn = mlp(3, 1, g2), mlp(2, 1, g2)
  local x = g2:randn({ 64, 1 }, { dtype = dt })
  local hist = Gm.gan_train { G = Gn, D = Dn, data = x, cond = x * 0 + 1, latent = 2, steps = 5, batch = 16,
    n_critic = 2, gp = 10, generator = g2, verbose = false }
  lu.assertTrue(type(hist.gp[5]) == "number" and hist.gp[5] >= 0)
  -- a typo is an error naming the options, not a silently ignored one
  local ok, msg = pcall(Gm.gan_train, { G = Gn, D = Dn, data = x, latent = 2, stpes = 5 })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(msg), "stpes")
end

os.exit(lu.LuaUnit.run())
