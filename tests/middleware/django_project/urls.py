from django.urls import include, path

from tests.middleware.django_project import views

api_patterns = [path("items/<int:pk>/", views.item_detail)]

urlpatterns = [
    path("hello/", views.hello),
    path("users/<str:name>/", views.user_detail),
    path("api/v1/", include(api_patterns)),
    path("echo/", views.echo),
    path("boom/", views.boom),
    path("attr/", views.attribute_error),
    path("missing/", views.missing),
    path("db/", views.db_view),
    path("untraced/", views.untraced_query),
    path("stream/", views.stream),
    path("stream-fail/", views.stream_fail),
    path("astream/", views.astream),
    path("slow-astream/", views.slow_astream),
    path("file/", views.file_view),
    path("async/", views.async_hello),
    path("async-boom/", views.async_boom),
    path("leaky/", views.leaky),
    path("concurrent/", views.concurrent),
    path("aconcurrent/", views.aconcurrent),
]
