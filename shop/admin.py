from django.contrib import admin

from shop.models import Category, Order, OrderLine, Product
from shop.product_cache import products_forget


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "stock", "is_active", "updated_at"]
    list_editable = ["price", "stock", "is_active"]
    list_filter = ["is_active", "category"]
    list_select_related = ["category"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}
    list_per_page = 50

    # Baskets show cached products: every change here drops their cache entries.
    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        products_forget([obj.pk])

    def delete_model(self, request, obj) -> None:
        products_forget([obj.pk])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        products_forget(list(queryset.values_list("pk", flat=True)))
        super().delete_queryset(request, queryset)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ["product", "product_name", "unit_price", "quantity"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "user", "total", "created_at"]
    list_select_related = ["user"]
    search_fields = ["name", "email", "id"]
    date_hierarchy = "created_at"
    readonly_fields = ["token", "user", "total", "created_at"]
    inlines = [OrderLineInline]
