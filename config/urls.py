"""Route the shop's URLs."""

from django.contrib import admin
from django.urls import include, path

from shop import health, metrics

# A database that cannot be reached answers 503 with Retry-After, anything else 500.
handler500 = "shop.views.server_error"

urlpatterns = [
    # Normally answered by HealthCheckMiddleware; routed too so reverse() works.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("cart/", include("cart.urls")),
    path("", include("shop.urls")),
]
