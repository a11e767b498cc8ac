from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop"

    def ready(self) -> None:
        from django.core.signals import request_finished
        from django.db.backends.signals import connection_created

        from shop.health import database_reached
        from shop.logs import request_id_forget

        request_finished.connect(request_id_forget, dispatch_uid="shop.logs.request_id_forget")
        # Once a process has reached its database, an outage no longer fails its readiness (shop.health).
        connection_created.connect(database_reached, dispatch_uid="shop.health.database_reached")
