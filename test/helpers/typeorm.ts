/** An entity and a migration for the TypeORM tests, written without decorators (EntitySchema). */
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

export interface Person {
  id: number;
  name: string;
  /** BIGINT: a string, as TypeORM reads it with its default supportBigNumbers and bigNumberStrings. */
  big: string | null;
}

export const PersonSchema = new EntitySchema<Person>({
  name: 'Person',
  tableName: 'person',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    name: { type: 'varchar', length: 100 },
    big: { type: 'bigint', nullable: true },
  },
});

/** Creates the `person` table; TypeORM reads the timestamp from the name's last 13 digits. */
export class CreatePerson1700000000000 implements MigrationInterface {
  name = 'CreatePerson1700000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE TABLE person (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, big BIGINT NULL)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE person');
  }
}

/** A second migration, run later with `dataSource.runMigrations()`. */
export class AddPersonIndex1700000000001 implements MigrationInterface {
  name = 'AddPersonIndex1700000000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('CREATE INDEX person_name ON person (name)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX person_name ON person');
  }
}

/** A migration whose statement the server refuses, to fail `initialize()` after its first borrows. */
export class BrokenMigration1700000000002 implements MigrationInterface {
  name = 'BrokenMigration1700000000002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('SELEC 1');
  }

  async down(): Promise<void> {}
}
