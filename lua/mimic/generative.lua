-- mimic.generative: generative mappings for stochastic outputs
-- (docs/mappings.md, "Generative models").
--
-- VAE blocks
--   G.GaussianHead(in, latent [, {dtype =, generator =}])   h -> mu, logvar (two Linear layers)
--   G.reparameterize(mu, logvar, generator) -> z, eps        z = mu + exp(logvar/2) eps
--   G.kl(mu, logvar) -> [N]        analytic KL(N(mu, diag exp(logvar)) || N(0, I)) per sample
--   G.kl_mean(mu, logvar)          its mean over the batch (a 0-dim tensor)
--   G.VAE(encoder, head, decoder [, {beta = 1, sigma = 1}])
--     vae:encode(x) -> mu, logvar;  vae:decode(z);  vae(x, generator) -> xhat, mu, logvar, z
--     vae:loss(x, generator) -> total, recon, kl  with recon = mean_n sum_j (x - xhat)^2 / (2 sigma^2)
--                                                 and total = recon + beta kl (0-dim tensors)
--     vae:fit(x, {epochs =, batch =, lr =, generator =, verbose = true, output = io.stdout}) -> history
--       (progress as mimic.train's: a line rewritten in place on a terminal, else a line per epoch)
--     vae:sample(n, {generator =}) -> decoder(z), z ~ N(0, I)
--   The "density information buffer" (after training):
--     vae:build_buffer(x)            stores every sample's posterior mu, sigma (vae.buffer_mu, _sigma)
--     vae:sample_buffer(n, {alpha = 1, gamma = 0, generator =}) -> x, index, z
--                                    picks stored posteriors i at random, z ~ N(mu_i, alpha sigma_i + gamma)
-- GAN support
--   G.gan_train{G =, D =, data =, cond =, latent =, steps =, batch =, n_critic = 1, lr =, lr_g =,
--               lr_d =, betas = {0.5, 0.999}, gp = 0, generator =, verbose = true, output =,
--               log_every = steps/10} -> history {d_loss = {...}, g_loss = {...}, gp = {...}}
--     alternating updates with the non-saturating loss: D minimises softplus(-D(x)) +
--     softplus(D(G(z))), G minimises softplus(-D(G(z))); gp > 0 adds gp * gradient_penalty.
--     Conditional: cond [N, k] is concatenated to z for G and to x for D.
--   G.gradient_penalty(D, real, fake, {generator =, cond =, center = 1}) -> 0-dim tensor
--     mean (|grad_x D(x_hat)| - center)^2 at x_hat = e real + (1 - e) fake, e ~ U(0, 1) per
--     row (WGAN-GP), differentiable in D's parameters (double backward). It leaves
--     d sum D(x_hat) / d theta in D's parameters' .grad: zero them before the loss backward.
--   G.gan_sample(Gnet, n, {latent =, cond =, generator =}) -> samples (no grad)
--
-- Randomness comes only from the explicit generator (mimic.Generator) given.
local mimic = require "mimic"
local nn = require "mimic.nn"
local optim = require "mimic.optim"
local util = require "mimic.util"

local G = {}
local THIS = debug.getinfo(1, "S").source
local function raise(fn, fmt, ...) util.raiser(THIS, fn)(fmt, ...) end

-- n uniform row indices in 1..m (int64), from g.
local function random_rows(g, n, m)
  local u = g:rand({ n }, { dtype = "float64" }):totable()
  for i = 1, n do u[i] = math.min(m, math.floor(u[i] * m) + 1) end
  return mimic.tensor(u, "int64")
end

local function rng_of(fn, g)
  if g == nil then return mimic.default_generator() end
  if type(g) ~= "userdata" or not tostring(g):find("Generator", 1, true) then
    raise(fn, "generator must be a mimic.Generator, got %s", type(g))
  end
  return g
end

-- --- VAE blocks ---------------------------------------------------------------------
local GaussianHead = nn.Module:extend("GaussianHead")
G.GaussianHead = GaussianHead
function GaussianHead:init(nin, latent, opts)
  opts = opts or {}
  self.latent = latent
  self.mu = nn.Linear(nin, latent, { dtype = opts.dtype, generator = opts.generator })
  self.logvar = nn.Linear(nin, latent, { dtype = opts.dtype, generator = opts.generator })
end
function GaussianHead:forward(h) return self.mu(h), self.logvar(h) end
function GaussianHead:extra_repr() return "latent=" .. self.latent end

function G.reparameterize(mu, logvar, generator)
  local eps = rng_of("reparameterize", generator):randn(mu:size(), { dtype = mu:dtype() })
  return mu + (logvar * 0.5):exp() * eps, eps
end

function G.kl(mu, logvar)
  return ((logvar:exp() + mu:square() - 1 - logvar) * 0.5):sum(-1)
end
function G.kl_mean(mu, logvar) return G.kl(mu, logvar):mean() end

local VAE = nn.Module:extend("VAE")
G.VAE = VAE
function VAE:init(encoder, head, decoder, opts)
  opts = opts or {}
  self.encoder, self.head, self.decoder = encoder, head, decoder
  self.beta = opts.beta or 1
  self.sigma = opts.sigma or 1
  if type(self.beta) ~= "number" or self.beta < 0 then raise("VAE", "beta must be a number >= 0") end
  if type(self.sigma) ~= "number" or self.sigma <= 0 then raise("VAE", "sigma must be a number > 0") end
end
function VAE:encode(x) return self.head(self.encoder(x)) end
function VAE:decode(z) return self.decoder(z) end
function VAE:forward(x, generator)
  local mu, logvar = self:encode(x)
  local z = G.reparameterize(mu, logvar, generator)
  return self:decode(z), mu, logvar, z
end
function VAE:loss(x, generator)
  local xhat, mu, logvar = self:forward(x, generator)
  local recon = (x - xhat):square():sum(-1):mean() / (2 * self.sigma ^ 2)
  local kl = G.kl_mean(mu, logvar)
  return recon + kl * self.beta, recon, kl
end

local function fmt_epoch(e, n) return string.format("epoch %" .. #tostring(n) .. "d/%d", e, n) end

-- Adam on the negative ELBO; one plain line per epoch (util.progress).
function VAE:fit(x, opts)
  opts = opts or {}
  util.check_options(util.raiser(THIS, "VAE:fit"), opts,
    { epochs = true, batch = true, lr = true, generator = true, verbose = true, output = true })
  local g = rng_of("VAE:fit", opts.generator)
  local epochs, bs = opts.epochs or 100, opts.batch or 128
  local opt = optim.Adam(self:parameters(), { lr = opts.lr or 1e-3 })
  if opts.verbose ~= nil and type(opts.verbose) ~= "boolean" then raise("VAE:fit", "verbose must be a boolean") end
  local progress = util.progress(opts.output or io.stdout, opts.verbose ~= false)
  local n = x:size(1)
  local history = {}
  self:train()
  local t0 = mimic.clock()
  for e = 1, epochs do
    local perm = g:randperm(n)
    local sum, sum_r, sum_k, nb = 0, 0, 0, 0
    for s = 1, n, bs do
      local idx = perm:narrow(1, s, math.min(bs, n - s + 1))
      local xb = x:index_select(1, idx)
      opt:zero_grad()
      local total, recon, kl = self:loss(xb, g)
      total:backward()
      opt:step()
      sum, sum_r, sum_k, nb = sum + total:item(), sum_r + recon:item(), sum_k + kl:item(), nb + 1
    end
    local h = { epoch = e, loss = sum / nb, recon = sum_r / nb, kl = sum_k / nb, seconds = mimic.clock() - t0 }
    history[e] = h
    progress:line(string.format("%s  loss %.4g  recon %.4g  kl %.4g  %.1f s", fmt_epoch(e, epochs), h.loss, h.recon,
      h.kl, h.seconds))
  end
  progress:finish()
  self:evaluate()
  return history
end

local function latent_of(self)
  local h = self.head
  if h and h.latent then return h.latent end
  raise("VAE", "cannot tell the latent width (the head has no .latent)")
end

local function dtype_of(self)
  local ps = self.decoder:parameters()
  return ps[1] and ps[1]:dtype() or "float32"
end

function VAE:sample(n, opts)
  opts = opts or {}
  local g = rng_of("VAE:sample", opts.generator)
  local z = g:randn({ n, latent_of(self) }, { dtype = dtype_of(self) })
  return mimic.no_grad(function() return self.decoder(z) end), z
end

function VAE:build_buffer(x)
  mimic.no_grad(function()
    local was = self.training
    self:evaluate()
    local mu, logvar = self:encode(x)
    self:train(was)
    self:add_buffer("buffer_mu", mu:detach():contiguous())
    self:add_buffer("buffer_sigma", (logvar * 0.5):exp():detach():contiguous())
  end)
  return self
end

function VAE:sample_buffer(n, opts)
  opts = opts or {}
  local fn = "VAE:sample_buffer"
  local mu, sigma = self.buffer_mu, self.buffer_sigma
  if not mu then raise(fn, "no density buffer: call vae:build_buffer(x) after training") end
  local alpha, gamma = opts.alpha or 1, opts.gamma or 0
  if type(alpha) ~= "number" or alpha < 0 or type(gamma) ~= "number" or gamma < 0 then
    raise(fn, "alpha and gamma must be numbers >= 0")
  end
  local g = rng_of(fn, opts.generator)
  local m = mu:size(1)
  local idx = random_rows(g, n, m)
  local mi, si = mu:index_select(1, idx), sigma:index_select(1, idx)
  local z = mi
  if alpha ~= 0 or gamma ~= 0 then
    z = mi + (si * alpha + gamma) * g:randn(mi:size(), { dtype = mi:dtype() })
  end
  return mimic.no_grad(function() return self.decoder(z) end), idx, z
end

-- --- GAN support ------------------------------------------------------------------------
local function with_cond(x, c) return c and mimic.cat({ x, c }, 2) or x end

function G.gradient_penalty(D, real, fake, opts)
  opts = opts or {}
  local g = rng_of("gradient_penalty", opts.generator)
  local e = g:rand({ real:size(1), 1 }, { dtype = real:dtype() })
  local xh = (real:detach() * e + fake:detach() * (1 - e)):requires_grad_()
  local out = D(with_cond(xh, opts.cond))
  out:sum():backward({ create_graph = true })
  local gx = xh.grad
  -- the norm's gradient is undefined at 0: a tiny floor keeps it finite
  local norm = ((gx * gx):sum(-1) + 1e-12):sqrt()
  return (norm - (opts.center or 1)):square():mean()
end

function G.gan_sample(Gnet, n, opts)
  opts = opts or {}
  if not opts.latent then raise("gan_sample", "give latent = (the width of z)") end
  local g = rng_of("gan_sample", opts.generator)
  local ps = Gnet:parameters()
  local z = g:randn({ n, opts.latent }, { dtype = ps[1] and ps[1]:dtype() or "float32" })
  return mimic.no_grad(function() return Gnet(with_cond(z, opts.cond)) end)
end

local GAN_OPTS = { G = true, D = true, data = true, cond = true, latent = true, steps = true, batch = true,
  n_critic = true, lr = true, lr_g = true, lr_d = true, betas = true, gp = true, generator = true,
  verbose = true, output = true, log_every = true }

function G.gan_train(o)
  local fn = "gan_train"
  local r = util.raiser(THIS, fn)
  if type(o) ~= "table" then r("takes one options table {G =, D =, data =, latent =, ...}") end
  util.check_options(r, o, GAN_OPTS)
  local Gnet, Dnet, x, c = o.G, o.D, o.data, o.cond
  if not (nn.is_module(Gnet) and nn.is_module(Dnet)) then r("G and D must be nn modules") end
  if not mimic.is_tensor(x) or x:dim() ~= 2 then r("data must be a [N, d] tensor") end
  if c ~= nil and (not mimic.is_tensor(c) or c:dim() ~= 2 or c:size(1) ~= x:size(1)) then
    r("cond must be a [N, k] tensor with data's N rows")
  end
  local nz = util.check_int(r, "latent", o.latent, 1)
  local steps = util.check_int(r, "steps", o.steps or 1000, 1)
  local bs = util.check_int(r, "batch", o.batch or 64, 1)
  local n_critic = util.check_int(r, "n_critic", o.n_critic or 1, 1)
  local gpw = o.gp or 0
  local g = rng_of(fn, o.generator)
  local betas = o.betas or { 0.5, 0.999 }
  local opt_g = optim.Adam(Gnet:parameters(), { lr = o.lr_g or o.lr or 2e-4, betas = betas })
  local opt_d = optim.Adam(Dnet:parameters(), { lr = o.lr_d or o.lr or 2e-4, betas = betas })
  if o.verbose ~= nil and type(o.verbose) ~= "boolean" then r("verbose must be a boolean") end
  local progress = util.progress(o.output or io.stdout, o.verbose ~= false)
  local log_every = o.log_every or math.max(1, steps // 10)
  local n, dt = x:size(1), x:dtype()
  local history = { d_loss = {}, g_loss = {}, gp = {} }
  local t0 = mimic.clock()
  local function batch_rows() return random_rows(g, bs, n) end
  Gnet:train(); Dnet:train()
  for step = 1, steps do
    local dl, gpv
    for _ = 1, n_critic do
      local idx = batch_rows()
      local real = x:index_select(1, idx)
      local cb = c and c:index_select(1, idx) or nil
      local fake = mimic.no_grad(function()
        return Gnet(with_cond(g:randn({ bs, nz }, { dtype = dt }), cb))
      end)
      opt_d:zero_grad()
      local pen
      if gpw > 0 then
        pen = G.gradient_penalty(Dnet, real, fake, { generator = g, cond = cb })
        opt_d:zero_grad() -- drop d sum D(x_hat)/d theta left by the double backward
      end
      local loss = nn.functional.softplus(-Dnet(with_cond(real, cb))):mean()
        + nn.functional.softplus(Dnet(with_cond(fake, cb))):mean()
      dl = loss:item()
      if pen then
        gpv = pen:item()
        loss = loss + pen * gpw
      end
      loss:backward()
      opt_d:step()
    end
    local idx = batch_rows()
    local cb = c and c:index_select(1, idx) or nil
    opt_g:zero_grad()
    local fake = Gnet(with_cond(g:randn({ bs, nz }, { dtype = dt }), cb))
    local gl = nn.functional.softplus(-Dnet(with_cond(fake, cb))):mean()
    gl:backward()
    opt_g:step()
    history.d_loss[step], history.g_loss[step], history.gp[step] = dl, gl:item(), gpv
    if step % log_every == 0 or step == steps then
      progress:line(string.format("step %" .. #tostring(steps) .. "d/%d  D loss %.4g  G loss %.4g%s  %.1f s", step,
        steps, dl, gl:item(), gpv and string.format("  gp %.3g", gpv) or "", mimic.clock() - t0))
    end
  end
  progress:finish()
  Gnet:evaluate(); Dnet:evaluate()
  return history
end

return G
