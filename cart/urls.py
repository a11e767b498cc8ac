from django.urls import path

from cart import views

app_name = "cart"

urlpatterns = [
    path("", views.cart_detail, name="detail"),
    path("summary.json", views.cart_summary, name="summary"),
    path("add/<int:product_id>/", views.cart_add, name="add"),
    path("update/<int:product_id>/", views.cart_update, name="update"),
    path("remove/<int:product_id>/", views.cart_remove, name="remove"),
    path("clear/", views.cart_clear, name="clear"),
]
