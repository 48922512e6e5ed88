"""The shop's tables, as the bug found them: nothing stops two grants of one order."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "shop_orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class RedPacket(Base):
    __tablename__ = "shop_red_packets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"))
    campaign: Mapped[str] = mapped_column(String(40))


Session = sessionmaker()  # bound to the application's engine at start-up (db.configure)
