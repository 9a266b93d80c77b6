// Linear probe fitting (see Probe.h).
#include "Probe.h"

#include <algorithm>
#include <cmath>
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

/// Solves A x = b in place for a symmetric positive definite A (n x n, row-major).
std::vector<double> choleskySolve(std::vector<double> a, std::vector<double> b, int64_t n) {
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
  // Centre features and targets; the bias absorbs the means.
  std::vector<double> mx(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < d; ++c) mx[static_cast<size_t>(c)] += x(r, c) / static_cast<double>(n);
  double my = 0.0;
  for (double t : targets) my += t / static_cast<double>(n);
  Matrix xc(n, d);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < d; ++c) xc(r, c) = x(r, c) - mx[static_cast<size_t>(c)];
  std::vector<double> yc(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) yc[static_cast<size_t>(r)] = targets[static_cast<size_t>(r)] - my;

  LinearModel model;
  model.weights.assign(static_cast<size_t>(d), 0.0);
  if (d <= n) {  // primal: (X^T X + l2 I) w = X^T y
    std::vector<double> a(static_cast<size_t>(d * d), 0.0), b(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0.0;
        for (int64_t r = 0; r < n; ++r) s += xc(r, i) * xc(r, j);
        a[static_cast<size_t>(i * d + j)] = a[static_cast<size_t>(j * d + i)] = s;
      }
      a[static_cast<size_t>(i * d + i)] += l2;
      for (int64_t r = 0; r < n; ++r) b[static_cast<size_t>(i)] += xc(r, i) * yc[static_cast<size_t>(r)];
    }
    model.weights = choleskySolve(std::move(a), std::move(b), d);
  } else {  // dual: w = X^T (X X^T + l2 I)^-1 y
    std::vector<double> k(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0.0;
        for (int64_t c = 0; c < d; ++c) s += xc(i, c) * xc(j, c);
        k[static_cast<size_t>(i * n + j)] = k[static_cast<size_t>(j * n + i)] = s;
      }
    for (int64_t i = 0; i < n; ++i) k[static_cast<size_t>(i * n + i)] += l2;
    std::vector<double> alpha = choleskySolve(std::move(k), yc, n);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < d; ++c)
        model.weights[static_cast<size_t>(c)] += alpha[static_cast<size_t>(r)] * xc(r, c);
  }
  model.bias = my;
  for (int64_t c = 0; c < d; ++c) model.bias -= model.weights[static_cast<size_t>(c)] * mx[static_cast<size_t>(c)];
  return model;
}

}  // namespace gyrus::rt
