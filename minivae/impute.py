"""Missing data: fit a DLVM on an incomplete data set and impute it (MIWAE).

Mattei & Frellsen (ICML 2019). Write x = (x^o, x^m) for the observed and missing parts of a row,
with the mask m (True = observed). Under MCAR/MAR missingness the likelihood of the observed
data is p_θ(x^o) = ∫ p_θ(x^o|z) p(z) dz, and because the decoder is fully factorised,
p_θ(x^o|z) = Π_{j observed} Φ(x_j|η_j(z)): the missing features simply drop out. The MIWAE bound
is the IWAE bound of that likelihood, with an encoder that reads x^o (missing entries as 0):

    L_K = E[ log (1/K) Σ_k p_θ(x^o|z_k) p(z_k) / q_γ(z_k|x^o) ],   z_1..z_K ~ q_γ(z|x^o).

:class:`minivae.IWAE` computes it, and its hand-written gradient, when given ``mask``.

Single imputation: the conditional mean E[x^m|x^o] = ∫ E[x^m|z] p_θ(z|x^o) dz, estimated by
self-normalised importance sampling (SNIS) with the encoder as the proposal:

    x̂^m = Σ_l w̃_l E[x^m | z_l],   z_l ~ q_γ(z|x^o),   w̃_l = softmax_l(log w_l),

log w_l = log p_θ(x^o|z_l) + log p(z_l) - log q_γ(z_l|x^o): the same log-weights and normalised
weights as the bound's (:func:`minivae.ops.logsumexp_weights`), with L (10,000) samples.

Multiple imputation: sampling importance resampling (SIR). Draw an index l with probability
w̃_l, then x^m ~ p_θ(x^m|z_l); as L grows the pairs (z_l, x^m) become draws from
p_θ(z, x^m|x^o). Repeated M times this gives M completed data sets.

Categorical data (``likelihood="categorical"``: every column holds integer codes 0..C-1, a
product of multinomials): the conditional mean of a code means nothing, so the single
imputation is the most probable category under the importance-weighted predictive,

    x̂_j = argmax_c Σ_l w̃_l softmax(η_j(z_l))_c   ≈ argmax_c p_θ(x_j = c | x^o),

multiple imputations are SIR draws of codes, as above. Why the argmax: for a 0/1 loss
(an imputation is right or wrong), the expected loss of imputing c is 1 - p(x_j = c | x^o),
smallest at the most probable c, just as the conditional mean minimises the expected squared
error of a real value; the mean of codes would be the wrong summary (between two categories, or
a third one) and a random draw is right less often (Σ_c p_c² ≤ max_c p_c).

Mixed tables (``categorical=`` a list of column indices, or a dict index -> C): real columns
keep the real observation model (Student's t or Gaussian, standardised), each categorical column
gets a categorical model with its own C (1 + its largest observed code unless given), and the
decoder one set of heads per group of columns (:class:`minivae.likelihoods.Mixed`): log p(x|z)
is the sum of the groups' log-likelihoods, each head's gradient its group's. A missing real
cell is imputed by its conditional mean, a missing categorical cell by the argmax above, both
from the same importance weights.

Shapes: n rows, D = features, d = latent dimensions, L importance samples, M imputations.
"""
import sys

import numpy

from . import backend, validate
from .backend import xp
from .evaluate import _noise as example_noise, importance_passes
from .layers import ACTIVATIONS
from .likelihoods import Categorical
from .model import IWAE
from .ops import logsumexp_weights
from .optim import Adam
from .train import Diverged, train_epoch

#: The observation models of the imputer (the choices of ``likelihood``): two for real-valued
#: tables, and categorical for tables of integer codes (every column a categorical variable).
LIKELIHOODS = ("student_t", "gaussian", "categorical")
#: Adam's ε: Kingma & Ba's and TensorFlow 1's (the authors' notebooks), not minivae's default
#: 1e-4 (Burda et al.'s setting for MNIST), so that the benchmark follows the authors' recipe.
ADAM_EPS = 1e-8
#: Seeds the imputation draws: row i of X draws from default_rng([seed, IMPUTE_STREAM, i]).
IMPUTE_STREAM = 0x1A7F


# ---------------------------------------------------------------------- the two estimators (lab 8)
def snis_impute(x, mask, log_w, means):
    """Single imputation by self-normalised importance sampling (SNIS):

        x̂_j = x_j (observed),     x̂_j = Σ_l w̃_l E[x_j | z_l] (missing),

    with w̃_l = softmax_l(log w_l) (:func:`minivae.ops.logsumexp_weights`), an estimate of the
    conditional mean E[x^m | x^o] = ∫ E[x^m|z] p_θ(z|x^o) dz from samples z_l ~ q_γ(z|x^o).

    x: (B, D), anything (e.g. NaN) in the missing entries; mask: (B, D) bool, True = observed;
    log_w: (L, B), the log-weights of the L samples; means: (L, B, D), E[x | z_l] from the
    decoder -> x̂: (B, D).
    """
    _, w = logsumexp_weights(log_w)
    return xp.where(mask, x, (w[..., None] * means).sum(axis=0))


def sir_indices(log_w, u):
    """Multiple imputation by sampling importance resampling (SIR): the sample index l drawn with
    probability w̃_lb, for each row b and each of the M uniforms u[:, b] in [0, 1).

    Inverts the cumulative sum of the normalized weights: the smallest l with
    cumsum(w̃)[l] > u · cumsum(w̃)[L-1] (searchsorted with side="right", so u = 0 never picks
    a sample of weight 0), clipped to L - 1 (so that rounding cannot give L). The sums are
    taken in float64 so that float32 rounding cannot push a u past the last weight.
    log_w: (L, B), u: (M, B) -> (M, B) integers in 0..L-1. A row whose weights are all 0
    (every log w = -inf) has no distribution to draw from: check the weights first.
    """
    _, w = logsumexp_weights(xp.asarray(log_w).astype(xp.float64))
    cdf = xp.cumsum(w, axis=0)                                               # (L, B)
    v = xp.asarray(u) * cdf[-1]
    idx = xp.stack([xp.searchsorted(cdf[:, b], v[:, b], side="right")
                    for b in range(cdf.shape[1])], axis=1)
    return xp.minimum(idx, cdf.shape[0] - 1)


class NotFittedError(ValueError, AttributeError):
    """transform() before fit() (a ValueError, as scikit-learn's, so the CLI reports one line)."""


DivergenceError = Diverged        # the name of earlier versions


def check_data(X, what="X"):
    """X as a float64 NumPy array (n, D) with NaN for missing values; reject anything else.

    Returns ``(X, mask)`` with mask (n, D) boolean, True = observed. A copy only when needed:
    the caller must not write into X.
    """
    X = validate.finite_real_array(what, backend.to_numpy(X) if backend.name == "cupy" else X,
                                   "float64", allow_nan=True)   # exact for every int up to 2^53
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows, features), got shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {X.shape}")
    return X, ~numpy.isnan(X)


class MIWAEImputer:
    """Impute missing values (NaN) with a deep latent variable model trained by MIWAE.

    Parameters
    ----------
    z_dim : int
        Latent dimension d (the paper: 10 on the UCI data sets).
    hidden : tuple of int
        Hidden widths of the encoder (the decoder mirrors them); the paper: (128, 128).
    activation : "tanh" (the paper), "relu" (the authors' later notebooks) or "softplus".
    likelihood : "student_t" (default, as the paper's notebooks) or "gaussian" for real
        values; "categorical" for integer codes 0..C-1 in every column (not standardised;
        imputed by the most probable category, see the module's docstring).
    categorical : None, a list of column indices or a dict {column index: C}
        For a table mixing real and categorical columns: the categorical columns (integer
        codes 0..C-1, C = 1 + the largest observed code unless given), modelled by the
        categorical likelihood and imputed by the most probable category; the other columns
        by ``likelihood`` (which must then be "student_t" or "gaussian").
    k : int
        Importance samples K in the training bound (the paper: 20).
    epochs, batch_size, lr :
        Adam on the MIWAE bound, with random reshuffling each epoch.
    n_samples : int
        Importance samples L for imputation (the paper: 10,000).
    chunk_size : int
        At most this many (sample, row) pairs go through the network at once: memory stays
        bounded whatever L and n are (about 1 KB per pair with 128-wide layers and D = 30).
    dtype : "float32" (default) or "float64", the model's arithmetic.
    seed : int
        Seeds the initialisation, the shuffling and every Monte Carlo draw.
    verbose : int
        If > 0, print the training bound every ``verbose`` epochs to stderr.
    n_categories : int or None
        C for ``likelihood="categorical"``; None: 1 + the largest code observed by fit.

    Attributes (after fit)
    ----------------------
    model_ : IWAE, the trained model (on the standardised scale).
    mean_, scale_ : (D,) the observed mean and standard deviation of each column (scale 1 for a
        constant column) used to standardise, (x - mean_) / scale_.
    history_ : list of float, the mean MIWAE bound over each epoch's batches.
    n_categories_ : C of the categorical model (None for real-valued data).
    categorical_ : dict {column: C} of the categorical columns (empty for real-valued data;
        every column for likelihood="categorical").
    column_types_ : the model's ``column_types`` for a mixed table (None otherwise).
    n_features_in_ : int, D.
    """

    def __init__(self, z_dim=10, hidden=(128, 128), activation="tanh", likelihood="student_t",
                 k=20, epochs=500, batch_size=64, lr=1e-3, n_samples=10000, chunk_size=2 ** 16,
                 dtype="float32", seed=0, verbose=0, n_categories=None, categorical=None):
        # Real-valued data: the likelihoods with a location and a scale; or integer codes.
        self.likelihood = validate.choice("likelihood", likelihood, LIKELIHOODS)
        if n_categories is not None:
            if likelihood != "categorical":
                raise ValueError("n_categories is for likelihood='categorical' only")
            n_categories = validate.positive_int("n_categories", n_categories)
            if n_categories < 2:
                raise ValueError(f"n_categories must be at least 2, got {n_categories}")
        self.n_categories = n_categories
        self.categorical = _categorical_spec(categorical, self.likelihood)
        self.z_dim = validate.positive_int("z_dim", z_dim)
        self.hidden = validate.hidden(hidden)
        self.activation = validate.choice("activation", activation, ACTIVATIONS)
        self.dtype = validate.dtype(dtype)
        self.k = validate.positive_int("k", k)
        self.epochs = validate.positive_int("epochs", epochs)
        self.batch_size = validate.positive_int("batch_size", batch_size)
        self.lr = validate.positive_real("lr", lr)
        self.n_samples = validate.positive_int("n_samples", n_samples)
        self.chunk_size = validate.positive_int("chunk_size", chunk_size)
        self.seed = validate.seed("seed", seed)
        # verbose=True is scikit-learn's spelling of "report every epoch"
        self.verbose = int(verbose) if isinstance(verbose, (bool, numpy.bool_)) else \
            validate.nonnegative_int("verbose", verbose)

    # ------------------------------------------------------------------ training
    def fit(self, X, callback=None):
        """Standardise X with its observed means and standard deviations and train the model.

        X : (n, D) array-like, NaN = missing. Every column needs at least one observed value.
        callback : optional ``callback(epoch, bound)``, called after every epoch (e.g. to track
            the imputation error while training, as the benchmark does).
        Returns self.
        """
        X, mask = check_data(X)
        empty = numpy.flatnonzero(~mask.any(axis=0))
        if empty.size:
            raise ValueError(f"column {empty[0]} of X has no observed value: nothing to learn "
                             f"it from ({empty.size} such column(s))")
        D = self.n_features_in_ = X.shape[1]
        n_categories, column_types, likelihood = None, None, self.likelihood
        if self.likelihood == "categorical":
            n_categories = max(check_codes(X, range(D), self.n_categories).values())
            self.categorical_ = {j: n_categories for j in range(D)}
        else:
            self.categorical_ = check_codes(X, _columns(self.categorical, D),
                                            self.categorical if isinstance(self.categorical,
                                                                           dict) else None)
        # Standardise the real columns with their observed entries only: the model then sees
        # unit-scale features (the Student's t and the Glorot initialisation both assume it).
        # Codes are labels, not magnitudes: no standardisation (mean 0, scale 1).
        self.mean_, self.scale_ = _observed_location_scale(X)
        cat = list(self.categorical_)
        self.mean_[cat], self.scale_[cat] = 0.0, 1.0
        if self.categorical_ and self.likelihood != "categorical":
            column_types = [self.categorical_.get(j, self.likelihood) for j in range(D)]
            likelihood = "mixed"
        self.n_categories_, self.column_types_ = n_categories, column_types
        # The model's own RNG draws the training ε; a separate host RNG shuffles, so that the
        # order does not depend on the backend's generator (imputation: see transform).
        self.model_ = IWAE(D, self.z_dim, hidden=self.hidden, activation=self.activation,
                           likelihood=likelihood, dtype=self.dtype, seed=self.seed,
                           n_categories=n_categories, column_types=column_types)
        self._rng = numpy.random.default_rng([self.seed, 0x1A7E])
        x, m = self._to_device(X, mask)
        self.history_ = []
        self._train(x, m, callback)
        return self

    def _to_device(self, X, mask):
        """Standardised rows on the device, missing entries 0 (what the encoder reads).

        (x - mean) / scale is computed as (x/2 - mean/2) / (scale/2), which is the same number
        (halving is exact) but cannot overflow: |x - mean| can exceed the largest float64 when
        |x| is near it, |x/2 - mean/2| cannot.
        """
        Z = numpy.where(mask, (X / 2 - self.mean_ / 2) / (self.scale_ / 2), 0.0)
        return backend.asarray(Z, dtype=self.model_.dtype), backend.asarray(mask)

    def _from_standard(self, Z):
        """mean + scale · z back in the data's units, float64; an imputation that does not fit
        in float64 is refused rather than written as inf."""
        with numpy.errstate(over="ignore"):
            X = 2 * (self.mean_ / 2 + (self.scale_ / 2) * Z.astype(numpy.float64))
        if not numpy.isfinite(X).all():
            raise ValueError("an imputed value overflows float64 (the data are within a factor "
                             "of about 2 of the largest float64); rescale the data first")
        return X

    def _train(self, x, m, callback):
        model, n = self.model_, x.shape[0]
        opt = Adam(model.params, lr=self.lr, eps=ADAM_EPS)
        n_batches = max(1, -(-n // self.batch_size))

        def objective(idx):
            return model.bound_and_grads(x[idx], self.k, mask=m[idx], check=False)

        for epoch in range(1, self.epochs + 1):
            # Random reshuffling; array_split gives batches of equal size ± 1 (as the authors'
            # notebooks), so no epoch ends with a tiny, noisy batch.
            batches = (backend.asarray(idx) for idx in
                       numpy.array_split(self._rng.permutation(n), n_batches))
            try:            # the bound is read once, at the end of the epoch (one device sync)
                bound = train_epoch(objective, opt, batches)
            except Diverged as e:
                raise Diverged(f"MIWAE training diverged at epoch {epoch} ({e}); try a smaller "
                               f"learning rate (lr={self.lr:g})") from None
            self.history_.append(bound)
            if self.verbose > 0 and (epoch % self.verbose == 0 or epoch == self.epochs):
                print(f"epoch {epoch}/{self.epochs}: MIWAE bound {bound:.4f}", file=sys.stderr)
            if callback is not None:
                callback(epoch, bound)

    # ------------------------------------------------------------------ imputation
    def transform(self, X, n_imputations=None, on_progress=None):
        """Fill in the missing values (NaN) of X.

        X : (n, D), NaN = missing; D must be the D seen by fit.
        n_imputations : None (default) for the single imputation x̂^m = Σ_l w̃_l E[x^m|z_l]
            (an estimate of the conditional mean E[x^m|x^o], the imputation of least squared
            error); an integer M for M draws by sampling importance resampling.

        on_progress : optional ``on_progress(n_rows_done)``, called after every block of the
            rows that have something to impute (e.g. to update a progress bar).

        Returns a float64 array: (n, D) for a single imputation, (M, n, D) for M imputations.
        Observed entries are X's own values, bit for bit; fully observed rows cost nothing.

        Every draw for row i of X (its L samples, and for M imputations its resampling
        uniforms and observation noise) comes from its own host generator, seeded with
        (seed, i): the result depends on neither ``chunk_size`` (how the rows and the L samples
        are split into passes) nor the backend, and the same X gives the same imputations.
        """
        if not hasattr(self, "model_"):
            raise NotFittedError("this MIWAEImputer is not fitted yet: call fit(X) first")
        if n_imputations is not None:
            n_imputations = validate.positive_int("n_imputations", n_imputations)
        X, mask = check_data(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the imputer was fitted on "
                             f"{self.n_features_in_}")
        if self.categorical_:
            check_codes(X, self.categorical_, self.categorical_)
        M = n_imputations or 1
        out = numpy.repeat(X[None], M, axis=0)           # observed entries copied as they are
        rows = numpy.flatnonzero(~mask.all(axis=1))      # only rows with something to impute
        L = self.n_samples
        x, m = self._to_device(X[rows], mask[rows])
        # Host generators, one per row, as minivae.evaluate's: drawing ε in blocks of samples
        # from one NumPy generator gives the same numbers as one draw, whereas a CuPy generator
        # takes element j of a draw from its stream j mod size, so the split would matter.
        generators = [numpy.random.default_rng([self.seed, IMPUTE_STREAM, int(i)]) for i in rows]
        d, dtype = self.z_dim, numpy.dtype(self.dtype)

        def noise(block):
            return lambda kk: backend.asarray(example_noise(generators[block], kk, d, dtype))

        # The one chunked importance-sampling pass (minivae.evaluate): rows × samples <=
        # chunk_size at any time.
        for block, pieces in importance_passes(self.model_, x, L, self.chunk_size, mask=m,
                                               noise=noise, check=False):
            r = rows[block]
            if n_imputations is None:
                draws = self._conditional_mean(pieces)[None]
            else:
                draws = self._resample(pieces, L, M, generators[block])
            imputed = self._from_standard(backend.to_numpy(draws))
            out[:, r] = numpy.where(mask[r], X[r], imputed)
            if on_progress is not None:
                on_progress(block.stop)
        return out[0] if n_imputations is None else out

    def fit_transform(self, X, n_imputations=None, callback=None):
        """fit(X) then transform(X): impute the data the model was trained on."""
        return self.fit(X, callback=callback).transform(X, n_imputations=n_imputations)

    def _categorical_groups(self):
        """[(columns, head)]: the categorical columns (a device index array) and the logits
        head that models them (all columns for likelihood="categorical"; one per group of a
        mixed table; none for real data)."""
        lik = self.model_.likelihood
        if lik.name == "categorical":
            return [(xp.arange(self.n_features_in_), "logits")]
        if lik.name == "mixed":
            return [(g.index, g.heads[0]) for g in lik.groups if g.model.name == "categorical"]
        return []

    def _pass_estimates(self, pieces, keep):
        """For each piece c of the L samples z_l ~ q(z|x^o) (from :func:`importance_passes`)
        yield its log-sum-exp lse_c (B,) and its estimates, with w̃^c normalised within the
        piece: the SNIS mean Σ_{l∈c} w̃^c_l E[x|z_l] (B, D), then for each categorical group
        (:meth:`_categorical_groups`) its predictive Σ_{l∈c} w̃^c_l softmax(η_l) (B, D_g, C);
        with keep, also its log w (L_c, B) and z (L_c, B, d).
        """
        lik = self.model_.likelihood
        for log_w, cache in pieces:
            lse, w = logsumexp_weights(log_w)
            heads = cache["heads"]
            means = lik.mean(**heads)                                    # E[x|z_l]: (k, B, D)
            est = [snis_impute(cache["x"], cache["mask"], log_w, means)]
            for _, head in self._categorical_groups():
                # this piece's Σ_l w̃_l softmax(η_l) ≈ p(x_j = c | x^o): (B, D_g, C)
                est.append((w[..., None, None] * Categorical.probs(heads[head])).sum(axis=0))
            yield lse, est, (log_w, cache["z"]) if keep else None

    def _conditional_mean(self, pieces):
        """SNIS: x̂ = Σ_l w̃_l E[x|z_l] over all L samples, (B, D) on the standardised scale;
        in categorical columns, the most probable category under Σ_l w̃_l softmax(η_l).

        Done piece by piece, exactly: with W_c = Σ_{l∈c} w_l (log W_c = lse_c),
        w̃_l = w_l / Σ_c W_c = (w_l / W_c) · (W_c / Σ_c' W_c'), so the global estimate is the
        softmax over pieces of lse_c weighting each piece's own SNIS estimate (SNIS again, with
        the pieces as samples). Observed entries are x's own (up to rounding).
        """
        lses, ests = zip(*((lse, est) for lse, est, _ in self._pass_estimates(pieces, False)))
        total, omega = logsumexp_weights(xp.stack(lses))                 # over pieces: (P, B)
        self._check_weights(total)
        combined = []
        for parts in zip(*ests):                         # the mean, then each group's predictive
            parts = xp.stack(parts)
            combined.append((omega.reshape(omega.shape + (1,) * (parts.ndim - 2)) * parts
                             ).sum(axis=0))
        est = combined[0]
        for (columns, _), predictive in zip(self._categorical_groups(), combined[1:]):
            # Σ_l w̃_l softmax(η_l): the importance-weighted predictive p(x_j = c | x^o),
            # (B, D_g, C); impute its most probable category (the imputation of least
            # misclassification rate, as the conditional mean is of least squared error).
            est[:, columns] = xp.argmax(predictive, axis=-1).astype(est.dtype)
        return est

    def _resample(self, pieces, L, M, generators):
        """SIR: M draws (M, B, D) of x ~ p(x|z_l), l drawn with probability w̃_l over all L;
        row b's uniforms and observation noise from generators[b]."""
        log_w, z = (xp.concatenate(a) for a in zip(*(kept for _, _, kept in
                                                     self._pass_estimates(pieces, True))))
        total, _ = logsumexp_weights(log_w)                                  # (B,)
        self._check_weights(total)
        B = log_w.shape[1]
        u = numpy.stack([g.random(M) for g in generators], axis=1)           # (M, B)
        idx = sir_indices(log_w, backend.asarray(u))                          # (M, B)
        z_sel = z[idx, backend.asarray(numpy.arange(B))[None, :]]             # (M, B, d)
        # x ~ p(x|z_l) by the observation model's inverse CDF, row b's uniforms from its own
        # generator (as its indices), so the draws depend neither on passes nor on the backend.
        D = self.n_features_in_
        u = numpy.stack([g.random((M, D)) for g in generators], axis=1)      # (M, B, D)
        return self.model_.likelihood.draw(**self.model_.decode(z_sel), u=backend.asarray(u))

    @staticmethod
    def _check_weights(total):
        """total: (B,) log Σ_l w_l; without a finite one there is no estimate to return."""
        if not bool(xp.isfinite(total).all()):
            raise DivergenceError("the importance weights are not finite (a NaN or infinite "
                                  "log-weight): the model cannot impute these rows")


def _categorical_spec(categorical, likelihood):
    """The ``categorical`` argument checked: None, a tuple of column indices, or a dict
    {index: C}; only beside a real likelihood (one-line ValueError otherwise)."""
    if categorical is None:
        return None
    if likelihood == "categorical":
        raise ValueError("categorical= names the categorical columns of a mixed table; "
                         "likelihood='categorical' already makes every column categorical")
    if isinstance(categorical, dict):
        spec = {}
        for j, C in categorical.items():
            j = validate.nonnegative_int("categorical column", j)
            C = validate.positive_int(f"categorical[{j}] (its number of categories)", C)
            if C < 2:
                raise ValueError(f"categorical[{j}] (its number of categories) must be at "
                                 f"least 2, got {C}")
            spec[j] = C
        return spec
    if isinstance(categorical, (str, bytes)) or not hasattr(categorical, "__iter__"):
        raise ValueError(f"categorical must be a list of column indices or a dict {{column: "
                         f"C}}, got {categorical!r}")
    columns = tuple(validate.nonnegative_int("categorical column", j) for j in categorical)
    if len(set(columns)) != len(columns):
        raise ValueError(f"categorical names a column twice: {list(columns)}")
    return columns


def _columns(spec, D):
    """The categorical columns of a spec (None: none), each checked against D."""
    columns = () if spec is None else tuple(spec)
    for j in columns:
        if j >= D:
            raise ValueError(f"categorical column {j} does not exist: X has {D} columns "
                             f"(0..{D - 1})")
    return columns


def check_codes(X, columns, n_categories=None, names=None):
    """{column: C} for the categorical ``columns`` of X (n, D), NaN = missing: C is
    ``n_categories`` (an int for all, or a dict column -> C), else 1 + the column's largest
    observed code (at least 2). Every observed entry must be an integer code in 0..C-1: a
    one-line ValueError names the first column that breaks it (by ``names[j]`` if given)."""
    out = {}
    for j in columns:
        obs = X[:, j][~numpy.isnan(X[:, j])]
        C = n_categories.get(j) if isinstance(n_categories, dict) else n_categories
        bad = (obs < 0) | (obs != numpy.floor(obs))
        if C is not None:
            bad |= obs > C - 1
        if bad.any():
            codes = "non-negative integer codes" if C is None else f"integer codes 0..{C - 1}"
            what = f"column {names[j]!r}" if names is not None else f"column {j}"
            raise ValueError(f"{what} is categorical and needs {codes} in its observed cells, "
                             f"got {obs[bad][0]:g}")
        out[j] = C if C is not None else max(2, int(obs.max()) + 1 if obs.size else 2)
    return out


def _observed_location_scale(X):
    """The observed mean and standard deviation of each column of X (n, D), NaN = missing;
    scale 1 for a constant column.

    Computed in units of the column's largest |x|, so that neither the sum nor the squares
    overflow: np.nanstd of a column holding 1e200 is inf (1e200² overflows), which would
    standardise every value to 0 and impute ±inf.
    """
    unit = numpy.nanmax(numpy.abs(X), axis=0)                     # (D,), finite
    unit = numpy.where(unit > 0, unit, 1.0)
    Y = X / unit                                                  # every |y| <= 1
    mean, std = numpy.nanmean(Y, axis=0), numpy.nanstd(Y, axis=0)
    return mean * unit, numpy.where(std > 0, std * unit, 1.0)
