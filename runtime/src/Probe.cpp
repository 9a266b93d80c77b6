// Linear probe fitting (see Probe.h).
#include "Probe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace gyrus::rt {

Matrix Matrix::selectRows(std::span<const int64_t> indices) const {
  Matrix out(static_cast<int64_t>(indices.size()), cols);
  for (size_t i = 0; i < indices.size(); ++i) {
    auto src = row(indices[i]);
    std::copy(src.begin(), src.end(), out.data.begin() + static_cast<std::ptrdiff_t>(i) * cols);
  }
  return out;
}

Standardizer Standardizer::fit(const Matrix& x) {
  Standardizer s;
  s.mean.assign(static_cast<size_t>(x.cols), 0.0);
  s.scale.assign(static_cast<size_t>(x.cols), 1.0);
  if (x.rows == 0) return s;
  double n = static_cast<double>(x.rows);
  for (int64_t c = 0; c < x.cols; ++c) {
    double sum = 0.0;
    for (int64_t r = 0; r < x.rows; ++r) sum += x(r, c);
    double m = sum / n, ss = 0.0;
    for (int64_t r = 0; r < x.rows; ++r) ss += (x(r, c) - m) * (x(r, c) - m);
    double sd = std::sqrt(ss / n);
    s.mean[static_cast<size_t>(c)] = m;
    s.scale[static_cast<size_t>(c)] = sd > 1e-12 * (1.0 + std::abs(m)) ? sd : 1.0;
  }
  return s;
}

Matrix Standardizer::apply(const Matrix& x) const {
  Matrix out(x.rows, x.cols);
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t c = 0; c < x.cols; ++c)
      out(r, c) = (x(r, c) - mean[static_cast<size_t>(c)]) / scale[static_cast<size_t>(c)];
  return out;
}

std::vector<double> LinearModel::predict(const Matrix& x) const {
  std::vector<double> out(static_cast<size_t>(x.rows), bias);
  for (int64_t r = 0; r < x.rows; ++r) {
    auto xr = x.row(r);
    double s = bias;
    for (int64_t c = 0; c < x.cols; ++c) s += weights[static_cast<size_t>(c)] * xr[static_cast<size_t>(c)];
    out[static_cast<size_t>(r)] = s;
  }
  return out;
}

namespace {

/// Numerically stable log(1 + exp(t)).
double softplus(double t) { return t > 0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t)); }
double sigmoid(double t) {
  if (t >= 0) return 1.0 / (1.0 + std::exp(-t));
  double e = std::exp(t);
  return e / (1.0 + e);
}

/// Logistic objective and gradient at theta = (w..., b).
double logisticLoss(const Matrix& x, std::span<const int> labels, double l2,
                    const std::vector<double>& theta, std::vector<double>& grad) {
  int64_t d = x.cols;
  double n = static_cast<double>(x.rows);
  std::fill(grad.begin(), grad.end(), 0.0);
  double loss = 0.0;
  for (int64_t r = 0; r < x.rows; ++r) {
    auto xr = x.row(r);
    double z = theta[static_cast<size_t>(d)];
    for (int64_t c = 0; c < d; ++c) z += theta[static_cast<size_t>(c)] * xr[static_cast<size_t>(c)];
    double s = labels[static_cast<size_t>(r)] == 1 ? 1.0 : -1.0;
    loss += softplus(-s * z);
    double g = -s * sigmoid(-s * z) / n;  // d loss_r / dz, averaged
    for (int64_t c = 0; c < d; ++c) grad[static_cast<size_t>(c)] += g * xr[static_cast<size_t>(c)];
    grad[static_cast<size_t>(d)] += g;
  }
  loss /= n;
  for (int64_t c = 0; c < d; ++c) {
    loss += 0.5 * l2 * theta[static_cast<size_t>(c)] * theta[static_cast<size_t>(c)];
    grad[static_cast<size_t>(c)] += l2 * theta[static_cast<size_t>(c)];
  }
  return loss;
}

/// Factors a symmetric positive definite A (n x n, row-major) in place into its
/// Cholesky factor L (lower triangle; A = L L^T).
void choleskyFactor(std::vector<double>& a, int64_t n) {
  auto at = [&](int64_t i, int64_t j) -> double& { return a[static_cast<size_t>(i * n + j)]; };
  for (int64_t j = 0; j < n; ++j) {
    double diag = at(j, j);
    for (int64_t k = 0; k < j; ++k) diag -= at(j, k) * at(j, k);
    if (diag <= 0.0) throw std::runtime_error("ridge probe: matrix not positive definite");
    double l = std::sqrt(diag);
    at(j, j) = l;
    for (int64_t i = j + 1; i < n; ++i) {
      double v = at(i, j);
      for (int64_t k = 0; k < j; ++k) v -= at(i, k) * at(j, k);
      at(i, j) = v / l;
    }
  }
}

/// Solves L L^T x = b with the factor of choleskyFactor.
std::vector<double> choleskySolveFactored(const std::vector<double>& l, std::vector<double> b, int64_t n) {
  auto at = [&](int64_t i, int64_t j) { return l[static_cast<size_t>(i * n + j)]; };
  for (int64_t i = 0; i < n; ++i) {  // L y = b
    double v = b[static_cast<size_t>(i)];
    for (int64_t k = 0; k < i; ++k) v -= at(i, k) * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = v / at(i, i);
  }
  for (int64_t i = n - 1; i >= 0; --i) {  // L^T x = y
    double v = b[static_cast<size_t>(i)];
    for (int64_t k = i + 1; k < n; ++k) v -= at(k, i) * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = v / at(i, i);
  }
  return b;
}

/// Solves A x = b for a symmetric positive definite A (n x n, row-major).
std::vector<double> choleskySolve(std::vector<double> a, std::vector<double> b, int64_t n) {
  choleskyFactor(a, n);
  return choleskySolveFactored(a, std::move(b), n);
}

/// Features and targets centred on their means (the bias absorbs them).
struct Centred {
  Matrix x;
  std::vector<double> y;
  std::vector<double> meanX;
  double meanY = 0.0;
};

Centred centre(const Matrix& x, std::span<const double> targets) {
  int64_t n = x.rows, d = x.cols;
  Centred c;
  c.meanX.assign(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < d; ++k) c.meanX[static_cast<size_t>(k)] += x(r, k) / static_cast<double>(n);
  for (double t : targets) c.meanY += t / static_cast<double>(n);
  c.x = Matrix(n, d);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t k = 0; k < d; ++k) c.x(r, k) = x(r, k) - c.meanX[static_cast<size_t>(k)];
  c.y.resize(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) c.y[static_cast<size_t>(r)] = targets[static_cast<size_t>(r)] - c.meanY;
  return c;
}

/// X^T X (primal, d x d) or X X^T (dual, n x n) of the centred features.
std::vector<double> gram(const Matrix& xc, bool dual) {
  int64_t m = dual ? xc.rows : xc.cols, len = dual ? xc.cols : xc.rows;
  auto el = [&](int64_t i, int64_t k) { return dual ? xc(i, k) : xc(k, i); };
  std::vector<double> g(static_cast<size_t>(m * m), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < len; ++k) s += el(i, k) * el(j, k);
      g[static_cast<size_t>(i * m + j)] = g[static_cast<size_t>(j * m + i)] = s;
    }
  return g;
}

/// The inverse of (g + alpha I), from its Cholesky factor, one column at a time.
std::vector<double> shiftedInverse(std::vector<double> g, int64_t m, double alpha) {
  for (int64_t i = 0; i < m; ++i) g[static_cast<size_t>(i * m + i)] += alpha;
  choleskyFactor(g, m);
  std::vector<double> inv(static_cast<size_t>(m * m), 0.0);
  for (int64_t j = 0; j < m; ++j) {
    std::vector<double> e(static_cast<size_t>(m), 0.0);
    e[static_cast<size_t>(j)] = 1.0;
    std::vector<double> col = choleskySolveFactored(g, std::move(e), m);
    for (int64_t i = 0; i < m; ++i) inv[static_cast<size_t>(i * m + j)] = col[static_cast<size_t>(i)];
  }
  return inv;
}

/// The leave-one-out mean squared error of the ridge fit at strength `alpha`, from the
/// centred data and their Gram matrix (see fitRidgeLoo).
double looError(const Centred& c, const std::vector<double>& g, bool dual, double alpha) {
  int64_t n = c.x.rows, d = c.x.cols, m = dual ? n : d;
  double invN = 1.0 / static_cast<double>(n);
  std::vector<double> inv = shiftedInverse(g, m, alpha);
  auto invAt = [&](int64_t i, int64_t j) { return inv[static_cast<size_t>(i * m + j)]; };
  double sum = 0.0;
  if (dual) {
    // Residual r = alpha (Kc + alpha I)^-1 yc; 1 - h_ii = alpha [(Kc + alpha I)^-1]_ii - 1/n.
    for (int64_t i = 0; i < n; ++i) {
      double a = 0.0;
      for (int64_t j = 0; j < n; ++j) a += invAt(i, j) * c.y[static_cast<size_t>(j)];
      double denom = alpha * invAt(i, i) - invN;
      if (!(denom > 1e-12)) return std::numeric_limits<double>::infinity();
      double loo = alpha * a / denom;
      sum += loo * loo;
    }
  } else {
    // w = (Xc^T Xc + alpha I)^-1 Xc^T yc; h_ii = 1/n + xc_i^T (Xc^T Xc + alpha I)^-1 xc_i.
    std::vector<double> xty(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < d; ++k) xty[static_cast<size_t>(k)] += c.x(r, k) * c.y[static_cast<size_t>(r)];
    std::vector<double> w(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) w[static_cast<size_t>(i)] += invAt(i, j) * xty[static_cast<size_t>(j)];
    for (int64_t r = 0; r < n; ++r) {
      double fit = 0.0, h = invN;
      for (int64_t i = 0; i < d; ++i) {
        fit += w[static_cast<size_t>(i)] * c.x(r, i);
        double v = 0.0;
        for (int64_t j = 0; j < d; ++j) v += invAt(i, j) * c.x(r, j);
        h += c.x(r, i) * v;
      }
      double denom = 1.0 - h;
      if (!(denom > 1e-12)) return std::numeric_limits<double>::infinity();
      double loo = (c.y[static_cast<size_t>(r)] - fit) / denom;
      sum += loo * loo;
    }
  }
  return sum * invN;
}

}  // namespace

LinearModel fitLogistic(const Matrix& x, std::span<const int> labels, double l2) {
  if (static_cast<int64_t>(labels.size()) != x.rows || x.rows == 0)
    throw std::invalid_argument("logistic probe: features and labels differ in count");
  int64_t d = x.cols;
  size_t p = static_cast<size_t>(d + 1);
  // Lipschitz bound of the gradient: 1/4 * lambda_max([X 1]^T [X 1]) / n + l2.
  double frob = 0.0;
  for (double v : x.data) frob += v * v;
  double lipschitz = 0.25 * (frob + static_cast<double>(x.rows)) / static_cast<double>(x.rows) + l2;
  double step = 1.0 / lipschitz;

  std::vector<double> theta(p, 0.0), prev(p, 0.0), look(p, 0.0), grad(p, 0.0);
  double momentum = 1.0, prevLoss = logisticLoss(x, labels, l2, theta, grad);
  LinearModel model;
  const int64_t kMaxIterations = 100000;
  for (int64_t it = 1; it <= kMaxIterations; ++it) {
    double next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * momentum * momentum));
    double beta = (momentum - 1.0) / next;
    for (size_t i = 0; i < p; ++i) look[i] = theta[i] + beta * (theta[i] - prev[i]);
    logisticLoss(x, labels, l2, look, grad);
    prev = theta;
    for (size_t i = 0; i < p; ++i) theta[i] = look[i] - step * grad[i];
    momentum = next;
    double loss = logisticLoss(x, labels, l2, theta, grad);
    if (loss > prevLoss) momentum = 1.0;  // adaptive restart
    prevLoss = loss;
    double gmax = 0.0;
    for (double g : grad) gmax = std::max(gmax, std::abs(g));
    model.iterations = it;
    if (gmax < 1e-8) break;
  }
  model.weights.assign(theta.begin(), theta.begin() + d);
  model.bias = theta[static_cast<size_t>(d)];
  return model;
}

LinearModel fitRidge(const Matrix& x, std::span<const double> targets, double l2) {
  if (static_cast<int64_t>(targets.size()) != x.rows || x.rows == 0)
    throw std::invalid_argument("ridge probe: features and targets differ in count");
  int64_t n = x.rows, d = x.cols;
  Centred c = centre(x, targets);
  LinearModel model;
  model.weights.assign(static_cast<size_t>(d), 0.0);
  bool dual = d > n;
  std::vector<double> a = gram(c.x, dual);
  int64_t m = dual ? n : d;
  for (int64_t i = 0; i < m; ++i) a[static_cast<size_t>(i * m + i)] += l2;
  if (!dual) {  // primal: (X^T X + l2 I) w = X^T y
    std::vector<double> b(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < d; ++k) b[static_cast<size_t>(k)] += c.x(r, k) * c.y[static_cast<size_t>(r)];
    model.weights = choleskySolve(std::move(a), std::move(b), d);
  } else {  // dual: w = X^T (X X^T + l2 I)^-1 y
    std::vector<double> alpha = choleskySolve(std::move(a), c.y, n);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < d; ++k) model.weights[static_cast<size_t>(k)] += alpha[static_cast<size_t>(r)] * c.x(r, k);
  }
  model.bias = c.meanY;
  for (int64_t k = 0; k < d; ++k) model.bias -= model.weights[static_cast<size_t>(k)] * c.meanX[static_cast<size_t>(k)];
  return model;
}

std::vector<double> ridgeAlphaGrid() {
  std::vector<double> grid;
  for (int k = -4; k <= 12; ++k) grid.push_back(std::pow(10.0, 0.5 * k));
  return grid;
}

RidgeChoice fitRidgeLoo(const Matrix& x, std::span<const double> targets, std::span<const double> alphas) {
  if (static_cast<int64_t>(targets.size()) != x.rows)
    throw std::invalid_argument("ridge probe: features and targets differ in count");
  if (x.rows < 3) throw std::invalid_argument("ridge probe: leave-one-out needs at least 3 rows");
  if (alphas.empty()) throw std::invalid_argument("ridge probe: no strengths to choose from");
  Centred c = centre(x, targets);
  bool dual = x.cols > x.rows;
  std::vector<double> g = gram(c.x, dual);
  RidgeChoice best;
  best.looError = std::numeric_limits<double>::infinity();
  best.alpha = *std::max_element(alphas.begin(), alphas.end());
  for (double alpha : alphas) {
    if (!(alpha > 0.0)) throw std::invalid_argument("ridge probe: strengths must be positive");
    double e = looError(c, g, dual, alpha);
    // Ties (to a relative 1e-12) go to the stronger penalty.
    double tol = 1e-12 * std::max(1.0, std::abs(best.looError));
    if (e < best.looError - tol || (std::abs(e - best.looError) <= tol && alpha > best.alpha)) {
      best.looError = e;
      best.alpha = alpha;
    }
  }
  best.model = fitRidge(x, targets, best.alpha);
  return best;
}

}  // namespace gyrus::rt
